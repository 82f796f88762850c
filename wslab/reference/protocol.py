"""The chat wire protocol: one validated format for every chapter from 03 on and the complete app.

Every frame is a JSON text frame holding one object with a ``type``.

Client → server::

    {"type": "message", "content": "hi all"}
    {"type": "private", "to": "bo", "content": "psst"}
    {"type": "who"}                               (the room's whole user list, again: see Presence)
    {"type": "auth", "token": "eyJhbGciOi..."}    (chapter 04 on: the first frame; again to renew)

Server → client::

    {"type": "message", "user": "ada", "content": "hi all"}
    {"type": "private", "from": "ada", "to": "bo", "content": "psst"}
    {"type": "join", "user": "cy", "users": ["ada", "bo", "cy"], "version": 3}    (to cy, who joined)
    {"type": "join", "user": "cy", "count": 3, "version": 3}                     (to everyone else)
    {"type": "leave", "user": "ada", "count": 2, "version": 4}
    {"type": "users", "users": ["bo", "cy"], "version": 4}                       (the answer to "who")
    {"type": "error", "message": "what was wrong with the last frame"}

:func:`parse` turns a received frame into a model or raises :class:`ProtocolError` with a message fit to
send back to the client in an ``error`` frame; :func:`encode` turns a server-side model into text.

**Presence.** Only the user who joins is sent the whole list. Everyone else is sent the change: who joined or
left, how many are in the room now (``count``) and the room's presence ``version``, which goes up by one with
each join or leave. N joins thus deliver O(N²) bytes in all, not O(N³) (every member sent the whole list every
time). A client keeps the list itself (:class:`~wslab.reference.presence.Presence` does it); a change whose
``version`` is not the next one means it missed one, and it asks again with ``{"type": "who"}``.

    >>> parse('{"type": "message", "content": "hi"}')
    ChatMessage(type='message', content='hi')
    >>> encode(Error(message="unknown type 'shout'"))
    '{"type":"error","message":"unknown type \\'shout\\'"}'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "MAX_CONTENT",
    "MAX_TOKEN",
    "USER_PATTERN",
    "Announcement",
    "Auth",
    "ChatMessage",
    "ClientFrame",
    "Error",
    "Join",
    "Leave",
    "Message",
    "Private",
    "PrivateMessage",
    "ProtocolError",
    "ServerFrame",
    "Users",
    "Who",
    "encode",
    "frame_type",
    "loads",
    "parse",
    "parse_auth",
    "valid_room",
    "valid_user",
]

MAX_CONTENT = 2000  # characters in one chat message
MAX_TOKEN = 4096  # characters in an access token
USER_PATTERN = r"^[\w.-]{1,32}$"  # letters (any script), digits, _ . - ; 1 to 32 of them

UserName = Annotated[str, Field(pattern=USER_PATTERN)]
Content = Annotated[str, Field(min_length=1, max_length=MAX_CONTENT)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # a client may add an id


# -- client → server -------------------------------------------------------------------------------
class ChatMessage(_Frame):
    """A message to everyone in the room."""

    type: Literal["message"]
    content: Content


class PrivateMessage(_Frame):
    """A message to one user in the room."""

    type: Literal["private"]
    to: UserName
    content: Content


class Auth(_Frame):
    """Who the client is: an access token (see :mod:`wslab.reference.auth`), sent as the first frame."""

    type: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN)]


class Who(_Frame):
    """A request for the room's whole user list, answered with a :class:`Users` frame to the sender alone."""

    type: Literal["who"]


ClientFrame = Annotated[ChatMessage | PrivateMessage | Who, Field(discriminator="type")]
_client_frame: TypeAdapter[ChatMessage | PrivateMessage | Who] = TypeAdapter(ClientFrame)
_CLIENT_TYPES = ("message", "private", "who")
_EXPECTED = 'expected "message", "private" or "who"'


# -- server → client -------------------------------------------------------------------------------
class ServerFrame(BaseModel):
    """Base of the server → client frames."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)


class Message(ServerFrame):
    type: Literal["message"] = "message"
    user: str
    content: str


class Private(ServerFrame):
    type: Literal["private"] = "private"
    sender: str = Field(alias="from")
    to: str
    content: str


class Join(ServerFrame):
    """``user`` joined. To that user: the whole list (``users``) and ``version``; to everyone else: ``count``
    and ``version``, never the list. A field left ``None`` is left out of the frame."""

    type: Literal["join"] = "join"
    user: str
    users: list[str] | None = None
    count: int | None = None
    version: int | None = None


class Leave(ServerFrame):
    """``user`` left; ``count`` are in the room now, at presence ``version``."""

    type: Literal["leave"] = "leave"
    user: str
    count: int | None = None
    version: int | None = None


class Users(ServerFrame):
    """The room's whole user list in join order, at presence ``version``: the answer to ``who``."""

    type: Literal["users"] = "users"
    users: list[str]
    version: int


class Announcement(ServerFrame):
    """From the server itself (the instructor), to everyone in every room: no user can send one."""

    type: Literal["announcement"] = "announcement"
    content: str


class Error(ServerFrame):
    type: Literal["error"] = "error"
    message: str


class ProtocolError(ValueError):
    """A frame that does not follow the protocol; ``str(error)`` says why, in words for the client."""


def encode(frame: ServerFrame | Mapping[str, Any]) -> str:
    """The JSON text of a server → client frame (``from`` spelt as on the wire, fields left ``None`` left
    out), or of a dict (a kind of frame of your own; ``Client.send`` turns a dict into text here too)."""
    if isinstance(frame, ServerFrame):
        return frame.model_dump_json(by_alias=True, exclude_none=True)
    if isinstance(frame, Mapping):
        return json.dumps(dict(frame))
    raise TypeError(f"a frame is a protocol model or a dict, not {type(frame).__name__}")


def valid_user(name: str) -> bool:
    """Whether ``name`` is a valid user name: 1 to 32 letters, digits, ``_``, ``.`` or ``-``."""
    try:
        _user.validate_python(name)
    except ValidationError:
        return False
    return True


def valid_room(name: str) -> bool:
    """Whether ``name`` is a valid room name: the same rule as user names."""
    return valid_user(name)


_user: TypeAdapter[str] = TypeAdapter(UserName)


def parse(data: str | bytes) -> ChatMessage | PrivateMessage | Who:
    """Validate one received frame. Raises :class:`ProtocolError` saying what is wrong with it."""
    raw = _json_object(data)
    if raw.get("type") not in _CLIENT_TYPES:
        kind = raw.get("type")
        if kind is None:
            raise ProtocolError(f'missing "type": {_EXPECTED}')
        raise ProtocolError(f'unknown type {json.dumps(kind)}: {_EXPECTED}')
    try:
        return _client_frame.validate_python(raw)
    except ValidationError as exc:
        raise ProtocolError(_explain(exc)) from None


def frame_type(data: str | bytes) -> Any:
    """The ``type`` of a frame that is a JSON object, without validating the rest; None for anything
    else. For choosing who handles a frame, before that handler validates it."""
    try:
        frame = loads(data)
    except ProtocolError:
        return None
    return frame.get("type") if isinstance(frame, dict) else None


def parse_auth(data: str | bytes) -> Auth:
    """Validate an ``auth`` frame. Raises :class:`ProtocolError` saying what is wrong with it."""
    raw = _json_object(data)
    if raw.get("type") != "auth":
        raise ProtocolError('expected {"type": "auth", "token": "..."}')
    try:
        return Auth.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(_explain(exc, tagged=False)) from None


def loads(data: str | bytes) -> Any:
    """The JSON value in one received text frame, whatever its shape. Raises :class:`ProtocolError` for a
    binary frame, text that is not JSON, or JSON nested too deeply to parse (never a ``RecursionError``,
    which would end the connection and log a traceback)."""
    if isinstance(data, bytes):
        raise ProtocolError("binary frames are not part of this protocol: send JSON text")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"not valid JSON ({exc.args[0].split(':')[0]})") from None
    except RecursionError:  # "[[[[..." thousands deep: valid JSON, too deep to parse (up to Python 3.13)
        raise ProtocolError("JSON nested too deeply") from None


def _json_object(data: str | bytes) -> dict[str, Any]:
    raw = loads(data)
    if not isinstance(raw, dict):
        raise ProtocolError(f"expected a JSON object with a \"type\", got a JSON {_json_kind(raw)}")
    return raw


def _explain(exc: ValidationError, *, tagged: bool = True) -> str:
    error = exc.errors()[0]
    loc = error["loc"][1:] if tagged else error["loc"]  # in a tagged union, loc[0] is the tag
    where = ".".join(str(part) for part in loc) or "frame"
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return f'missing "{where}"'
    if kind == "string_too_long":
        return f'"{where}" is too long: at most {ctx.get("max_length")} characters'
    if kind == "string_too_short":
        return f'"{where}" is empty'
    if kind == "string_pattern_mismatch":
        return f'"{where}" is not a user name (1 to 32 letters, digits, _ . -)'
    if kind == "string_type":
        return f'"{where}" must be a string'
    return f'"{where}": {error["msg"]}'


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )
