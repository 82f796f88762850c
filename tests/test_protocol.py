from __future__ import annotations

import json

import pytest

from wslab.reference.protocol import (
    MAX_CONTENT,
    MAX_TOKEN,
    Auth,
    ChatMessage,
    Error,
    Join,
    Leave,
    Private,
    PrivateMessage,
    ProtocolError,
    Users,
    Who,
    encode,
    loads,
    parse,
    parse_auth,
    valid_user,
)


def test_parse_accepts_a_message() -> None:
    assert parse('{"type": "message", "content": "hi all"}') == ChatMessage(type="message", content="hi all")


def test_parse_accepts_a_request_for_the_user_list() -> None:
    assert parse('{"type": "who"}') == Who(type="who")


def test_presence_frames_carry_the_list_only_to_whoever_needs_it_whole() -> None:
    assert encode(Join(user="cy", users=["ada", "bo", "cy"], version=3)) == \
        '{"type":"join","user":"cy","users":["ada","bo","cy"],"version":3}'
    assert encode(Join(user="cy", count=3, version=3)) == '{"type":"join","user":"cy","count":3,"version":3}'
    assert encode(Leave(user="ada", count=2, version=4)) == \
        '{"type":"leave","user":"ada","count":2,"version":4}'
    assert encode(Users(users=["bo", "cy"], version=4)) == '{"type":"users","users":["bo","cy"],"version":4}'


def test_parse_accepts_a_private_message() -> None:
    frame = parse('{"type": "private", "to": "bo", "content": "psst"}')
    assert frame == PrivateMessage(type="private", to="bo", content="psst")


def test_parse_ignores_extra_fields() -> None:
    assert parse('{"type": "message", "content": "hi", "id": 7}') == ChatMessage(type="message", content="hi")


def test_parse_accepts_content_of_exactly_max_content_characters() -> None:
    frame = parse(json.dumps({"type": "message", "content": "é" * MAX_CONTENT}))
    assert isinstance(frame, ChatMessage) and len(frame.content) == MAX_CONTENT


@pytest.mark.parametrize(("data", "message"), [
    pytest.param("not json", "not valid JSON (Expecting value)", id="invalid-json"),
    pytest.param("[1, 2]", 'expected a JSON object with a "type", got a JSON array', id="array"),
    pytest.param('"hi"', 'expected a JSON object with a "type", got a JSON string', id="string"),
    pytest.param("null", 'expected a JSON object with a "type", got a JSON null', id="null"),
    pytest.param('{"content": "hi"}', 'missing "type": expected "message", "private" or "who"', id="no-type"),
    pytest.param('{"type": "shout", "content": "hi"}',
                 'unknown type "shout": expected "message", "private" or "who"', id="unknown-type"),
    pytest.param('{"type": "message"}', 'missing "content"', id="no-content"),
    pytest.param('{"type": "private", "content": "hi"}', 'missing "to"', id="no-to"),
    pytest.param('{"type": "message", "content": ""}', '"content" is empty', id="empty-content"),
    pytest.param(json.dumps({"type": "message", "content": "x" * (MAX_CONTENT + 1)}),
                 f'"content" is too long: at most {MAX_CONTENT} characters', id="long-content"),
    pytest.param('{"type": "message", "content": 5}', '"content" must be a string', id="number-content"),
    pytest.param('{"type": "message", "content": null}', '"content" must be a string', id="null-content"),
    pytest.param('{"type": "private", "to": "a b", "content": "hi"}',
                 '"to" is not a user name (1 to 32 letters, digits, _ . -)', id="invalid-to"),
    pytest.param('{"type": "private", "to": 5, "content": "hi"}', '"to" must be a string', id="number-to"),
    pytest.param(b"\x00", "binary frames are not part of this protocol: send JSON text", id="binary"),
])
def test_parse_rejects_a_bad_frame_with_a_helpful_message(data: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse(data)
    assert str(info.value) == message


def test_a_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


def test_encode_spells_from_on_the_wire_for_a_private_message() -> None:
    text = encode(Private.model_validate({"from": "ada", "to": "bo", "content": "psst"}))
    assert json.loads(text) == {"type": "private", "from": "ada", "to": "bo", "content": "psst"}


def test_a_private_frame_can_be_built_by_field_name() -> None:
    assert encode(Private.model_validate({"sender": "ada", "to": "bo", "content": "psst"})) == \
        '{"type":"private","from":"ada","to":"bo","content":"psst"}'


def test_encode_writes_compact_json_with_the_type_first() -> None:
    assert encode(Join(user="ada", users=["ada", "bo"])) == \
        '{"type":"join","user":"ada","users":["ada","bo"]}'
    assert encode(Error(message="no")) == '{"type":"error","message":"no"}'


@pytest.mark.parametrize("name", ["ada", "Zoë", "bo_2", "c.y", "dee-dee", "x" * 32])
def test_valid_user_accepts_a_name(name: str) -> None:
    assert valid_user(name)


@pytest.mark.parametrize("name", ["", "x" * 33, "a b", "a/b", "ada!", "<script>"])
def test_valid_user_refuses_a_name(name: str) -> None:
    assert not valid_user(name)


DEEP = 30_000  # levels of nesting that still fit in one 64 KB frame


@pytest.mark.parametrize("data", [
    "[" * DEEP + "]" * DEEP,
    '{"a":' * DEEP + "1" + "}" * DEEP,
    '{"type": "message", "content": ' + "[" * DEEP + "]" * DEEP + "}",
], ids=["array", "object", "content"])
def test_deeply_nested_json_is_a_protocol_error_not_a_crash(data: str) -> None:
    # Up to Python 3.13 the parser gives up ("nested too deeply"); from 3.14 on it parses this deep and
    # the shape is refused. Either way a ProtocolError, never a RecursionError.
    refused = "nested too deeply|expected a JSON object|missing|must be a string"
    with pytest.raises(ProtocolError, match=refused):
        parse(data)


def test_a_deeply_nested_extra_field_is_ignored_or_refused_never_a_crash() -> None:
    data = '{"type": "message", "content": "hi", "extra": ' + "[" * DEEP + "]" * DEEP + "}"
    try:
        assert parse(data) == ChatMessage(type="message", content="hi")  # extra fields are fine (3.14 on)
    except ProtocolError as exc:
        assert str(exc) == "JSON nested too deeply"  # up to 3.13


@pytest.mark.parametrize(("data", "message"), [
    (b"[]", "binary frames are not part of this protocol: send JSON text"),
    ("{", "not valid JSON (Expecting property name enclosed in double quotes)"),
])
def test_loads_says_why_a_frame_is_not_json(data: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        loads(data)
    assert str(refused.value) == message


def test_loads_takes_any_json_value_and_deep_nesting_is_never_a_recursion_error() -> None:
    assert loads("[1, 2]") == [1, 2]
    try:
        assert loads("[" * DEEP + "]" * DEEP)  # parsed, from Python 3.14 on
    except ProtocolError as exc:
        assert str(exc) == "JSON nested too deeply"  # up to 3.13


def test_parse_auth_accepts_an_auth_frame() -> None:
    assert parse_auth('{"type": "auth", "token": "a.b.c", "id": 1}') == Auth(type="auth", token="a.b.c")


@pytest.mark.parametrize(("data", "message"), [
    ('{"type": "message", "content": "hi"}', 'expected {"type": "auth", "token": "..."}'),
    ('{"type": "auth"}', 'missing "token"'),
    ('{"type": "auth", "token": ""}', '"token" is empty'),
    ('{"type": "auth", "token": 5}', '"token" must be a string'),
    (json.dumps({"type": "auth", "token": "x" * (MAX_TOKEN + 1)}),
     f'"token" is too long: at most {MAX_TOKEN} characters'),
    ("[]", 'expected a JSON object with a "type", got a JSON array'),
    (b"{}", "binary frames are not part of this protocol: send JSON text"),
])
def test_parse_auth_rejects_anything_else_with_a_helpful_message(data: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_auth(data)
    assert str(refused.value) == message
