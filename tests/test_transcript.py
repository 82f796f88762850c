from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from wslab.lab.transcript import Transcript, close_code_text, describe_close, describe_message
from wslab.reference.auth import Tokens


def test_text_is_shown_as_is_and_data_as_json() -> None:
    assert describe_message("hello") == "hello"
    assert describe_message("two\nlines") == "two\\nlines"
    assert describe_message({"type": "message", "content": "héllo"}) == \
        '{"type": "message", "content": "héllo"}'
    assert describe_message(b"\x00\xff") == "b'\\x00\\xff' (binary, 2 bytes)"


def test_long_messages_are_cut_with_their_length() -> None:
    assert describe_message("x" * 500) == "x" * 200 + "… (500 characters)"
    assert describe_message(b"y" * 300).endswith("… (binary, 300 bytes)")


def test_close_codes_are_named() -> None:
    assert close_code_text(1000) == "1000 (normal closure)"
    assert close_code_text(1008) == "1008 (policy violation)"
    assert close_code_text(4001) == "4001 (application-defined)"
    assert close_code_text(1234) == "1234 (unknown code)"


@pytest.mark.parametrize(("rcvd", "sent", "rcvd_then_sent", "by_us", "text"), [
    (None, None, None, False, "connection lost without a close frame: 1006 (abnormal closure)"),
    (Close(1011, ""), Close(1011, ""), True, False, "closed by the server: 1011 (internal error)"),
    (Close(1008, "expired"), None, None, False, 'closed by the server: 1008 (policy violation) "expired"'),
    (Close(1000, ""), Close(1000, ""), False, True, "closed: 1000 (normal closure)"),
    (None, Close(1001, ""), None, False, "closed by this client: 1001 (going away)"),
])
def test_describe_close_says_who_closed_and_why(rcvd: Close | None, sent: Close | None,
                                                rcvd_then_sent: bool | None, by_us: bool, text: str) -> None:
    assert describe_close(ConnectionClosed(rcvd, sent, rcvd_then_sent), by_us=by_us) == text


def test_a_live_transcript_prints_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    live, quiet = Transcript(), Transcript(live=False)
    for transcript in (live, quiet):
        transcript.add("ada", "→", "hi")
    assert capsys.readouterr().out == "ada → hi\n"
    assert str(quiet) == "ada → hi" and repr(quiet) == "Transcript(1 lines)"
    quiet.clear()
    assert quiet.lines == []


def test_an_access_token_is_never_printed() -> None:
    token = Tokens().issue("ada")
    assert describe_message({"type": "auth", "token": token}) == '{"type": "auth", "token": "<token>"}'
