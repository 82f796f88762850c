"""Tokens, first-message auth, refusal before accept and the Origin check; the tutorial's version fails."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from apps import service_lines
from fastapi import FastAPI, WebSocket

import wslab
from wslab import LabServer, Transcript
from wslab.demos.auth_scenarios import attempt, token_cases, try_tokens
from wslab.demos.naive import NAIVE_SECRET, naive_auth_app, naive_cookie_app
from wslab.reference import auth
from wslab.reference.auth import (
    MAX_AUTH_FRAME,
    AuthError,
    Identity,
    Tokens,
    authenticate,
    bearer_token,
    origin_allowed,
    parse_origins,
    refuse,
)
from wslab.reference.secure_rooms import SecureRooms, secure_app

USERS = {"ada", "bo", "cy"}

# What a client is told for each case: (naive, hardened). The tutorial's refusals all look alike, two
# of them are server errors, and the one that passes drops the connection.
MATRIX = {
    "no token": ("HTTP 403, no body", 'auth: expected {"type": "auth", "token": "..."}'),
    "garbage": ("HTTP 403, no body", "auth: not a token: a JWT is three base64 parts joined by dots"),
    "another key": ("HTTP 403, no body", "auth: token refused: its signature does not match "
                                         "(another key signed it, or it was changed)"),
    "expired": ("HTTP 403, no body", "auth: token expired: log in again"),
    "alg none": ("HTTP 403, no body", "auth: token refused: signed with 'none', only HS256 is accepted"),
    "no sub": ("HTTP 500, body: Internal Server Error", 'auth: token refused: it has no "sub" claim'),
    "unknown user": ("HTTP 500, body: Internal Server Error", "auth: token refused: no user 'zed' here"),
    "valid": ("accepted, then connection lost without a close frame: 1006 (abnormal closure)", None),
}


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(users=USERS)


@pytest.fixture
def server(tokens: Tokens) -> Iterator[LabServer]:
    with wslab.serve(secure_app(SecureRooms(tokens, auth_timeout=0.5)), name="t-auth") as running:
        yield running
        assert running.wait_idle(5.0)
    assert running.log.lines("ERROR") == []


def test_the_tutorials_endpoint_cannot_tell_refusals_apart_and_fails_on_valid_tokens() -> None:
    with wslab.serve(naive_auth_app(), name="t-auth-naive") as server:
        cases = token_cases(Tokens(NAIVE_SECRET))
        outcomes = wslab.run_sync(try_tokens(server, "/ws", cases))
        assert outcomes == {case: naive for case, (naive, _) in MATRIX.items()}
        log = "\n".join(server.log.lines())
        assert "KeyError: 'sub'" in log and "KeyError: 'zed'" in log
        assert any(str(cases["valid"]) in line for line in server.log.lines("INFO")), "the token is logged"


def test_every_bad_token_gets_its_own_reason_and_1008_none_a_500_and_no_token_is_logged(
        server: LabServer, tokens: Tokens, capsys: pytest.CaptureFixture[str]) -> None:
    cases = token_cases(tokens)
    outcomes = wslab.run_sync(try_tokens(server, "/chat/lobby", cases, carry="auth frame"))
    for case, (_, reason) in MATRIX.items():
        if reason is None:
            assert outcomes[case] == \
                'accepted; first frame: {"type":"join","user":"ada","users":["ada"],"version":1}'
        else:
            closed = f'accepted, then closed by the server: 1008 (policy violation) "{reason}"'
            assert outcomes[case] == closed
    assert server.wait_idle(5.0)
    log = "\n".join(server.log.lines("DEBUG"))
    assert "auth refused: token expired" in log
    for token in cases.values():
        assert token is None or token not in log
    assert "HTTP 500" not in capsys.readouterr().out


def test_no_auth_frame_in_time_is_closed_with_1008(server: LabServer) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as client:
            return await client.wait_closed(5.0), client.close_reason

    reason = 'no auth frame within 0.5 s: send {"type": "auth", "token": ...} first'
    assert wslab.run_sync(scenario()) == (1008, reason)


def test_the_user_comes_from_the_token_and_chat_works(server: LabServer, tokens: Tokens) -> None:
    async def scenario() -> list[object]:
        quiet = Transcript(live=False)
        async with wslab.connect(server, "/chat/lobby", name="ada", transcript=quiet) as ada, \
                wslab.connect(server, "/chat/lobby", name="bo", transcript=quiet) as bo:
            await ada.send({"type": "auth", "token": tokens.issue("ada")})
            await ada.recv_json()
            await bo.send({"type": "auth", "token": tokens.issue("bo")})
            await ada.recv_json()
            await bo.recv_json()
            await bo.send({"type": "private", "to": "ada", "content": "hi"})
            return [await ada.recv_json(), await bo.recv_json()]

    private = {"type": "private", "from": "bo", "to": "ada", "content": "hi"}
    assert wslab.run_sync(scenario()) == [private, private]


def test_a_token_expiring_during_the_connection_closes_it_with_1008(server: LabServer,
                                                                    tokens: Tokens) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as ada:
            await ada.send({"type": "auth", "token": tokens.issue("ada", lifetime=1)})
            return await ada.wait_closed(5.0), ada.close_reason

    assert wslab.run_sync(scenario()) == (1008, "token expired: log in again")
    assert server.wait_idle(5.0)
    assert service_lines(server) == [
        'INFO wslab.reference.secure_rooms: 127.0.0.1:<port> - "/chat/lobby" ada - closed 1008: token '
        "expired: log in again"]


def test_a_fresh_token_for_the_same_user_keeps_the_connection(server: LabServer, tokens: Tokens) -> None:
    async def scenario() -> tuple[object, object, int | None]:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as ada:
            await ada.send({"type": "auth", "token": tokens.issue("ada", lifetime=2)})  # exp: whole seconds
            await ada.recv_json()
            await ada.send({"type": "auth", "token": tokens.issue("bo")})
            wrong_user = await ada.recv_json()
            await ada.send({"type": "auth", "token": tokens.issue("ada", lifetime=60)})
            await ada.send({"type": "message", "content": "still here"})
            message = await ada.recv_json()
            try:  # past the first token's expiry: still open
                await asyncio.wait_for(ada.connection.wait_closed(), 2.5)
            except TimeoutError:
                return wrong_user, message, None
            return wrong_user, message, ada.close_code

    wrong_user, message, closed = wslab.run_sync(scenario())
    assert wrong_user == {"type": "error", "message": "auth: that token is for bo, not ada"}
    assert message == {"type": "message", "user": "ada", "content": "still here"}
    assert closed is None


def test_a_cross_site_page_is_refused_before_accept_with_a_reason(server: LabServer, tokens: Tokens) -> None:
    token = tokens.issue("ada")
    evil = wslab.run_sync(attempt(server, "/chat/lobby", token, carry="auth frame",
                                  origin="http://127.0.0.1:8666"))
    assert evil == "HTTP 403, body: connections from pages at http://127.0.0.1:8666 are refused"
    own = wslab.run_sync(attempt(server, "/chat/lobby", token, carry="auth frame",
                                 origin=server.url))
    assert own.startswith("accepted; first frame:")


def test_post_token_logs_in_known_users_only(tokens: Tokens) -> None:
    app = secure_app(SecureRooms(tokens), passcode="swordfish")
    with wslab.serve(app, name="t-auth-login") as server, httpx.Client(base_url=server.url) as http:
        good = http.post("/token", json={"username": "ada", "passcode": "swordfish"})
        assert good.status_code == 200 and good.json()["token_type"] == "bearer"
        assert tokens.verify(good.json()["access_token"]).user == "ada"
        assert http.post("/token", json={"username": "ada"}).status_code == 401
        assert http.post("/token", json={"username": "ada", "passcode": "nope"}).status_code == 401
        refused = http.post("/token", json={"username": "zed", "passcode": "swordfish"})
        assert refused.status_code == 403 and "cannot log in here" in refused.json()["detail"]


def test_the_allowed_hook_keeps_a_user_out_of_a_room(tokens: Tokens) -> None:
    with wslab.serve(secure_app(LobbyOnly(tokens)), name="t-auth-allowed") as server:
        token = tokens.issue("ada", rooms=["lobby"])
        outcome = wslab.run_sync(attempt(server, "/chat/attic", token, carry="auth frame"))
    assert outcome.endswith("1008 (policy violation) \"ada may not join the room 'attic'\"")
    assert service_lines(server) == [
        'INFO wslab.reference.secure_rooms: 127.0.0.1:<port> - "/chat/attic" ada - closed 1008: ada may not '
        "join the room 'attic'"]


def test_an_async_allowed_hook_is_refused_with_a_clear_error(tokens: Tokens) -> None:
    class Async(SecureRooms):
        async def allowed(self, identity: object, room_name: str) -> bool:  # type: ignore[override]
            return True

    with pytest.raises(TypeError, match=r"allowed\(\) must be a plain `def`"):
        Async(tokens)


# -- Tokens ------------------------------------------------------------------------------------------
def test_a_token_carries_user_role_expiry_and_extra_claims(tokens: Tokens) -> None:
    identity = tokens.verify(tokens.issue("bo", role="host", rooms=["lobby"], lifetime=60))
    assert (identity.user, identity.role, identity.claims["rooms"]) == ("bo", "host", ["lobby"])
    assert 59 < identity.expires_in <= 61  # at least the lifetime asked for: exp is rounded up


SHARED_SECRET = "the one secret every worker of the service is given"


def test_a_token_from_a_worker_whose_clock_is_3_s_ahead_is_accepted() -> None:
    # Two workers behind a load balancer, one WSLAB_SECRET: the one that issued the token runs 3 s ahead,
    # so its "iat" is in the future for the one that verifies it.
    ahead = int(time.time()) + 3
    token = Tokens(SHARED_SECRET).sign({"sub": "ada", "role": "user", "iat": ahead, "exp": ahead + 3600})
    with wslab.serve(secure_app(SecureRooms(Tokens(SHARED_SECRET))), name="t-auth-skew") as server:
        outcome = wslab.run_sync(attempt(server, "/chat/lobby", token, carry="auth frame"))
    assert outcome == 'accepted; first frame: {"type":"join","user":"ada","users":["ada"],"version":1}'


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_a_token_from_further_ahead_than_the_leeway_is_refused(claim: str) -> None:
    ahead = int(time.time()) + int(auth.LEEWAY) + 30
    token = Tokens(SHARED_SECRET).sign({"sub": "ada", claim: ahead, "exp": ahead + 3600})
    with pytest.raises(AuthError, match=rf"token refused: The token is not yet valid \({claim}\)"):
        Tokens(SHARED_SECRET).verify(token)


def test_the_leeway_never_lengthens_a_token(tokens: Tokens) -> None:
    # Within the leeway of its expiry, but expired: refused, as the connection holding it is closed then.
    assert auth.LEEWAY > 1
    with pytest.raises(AuthError, match="token expired") as refused:
        tokens.verify(tokens.sign({"sub": "ada", "exp": int(time.time()) - 1}))
    assert refused.value.kind == "expired"


@pytest.mark.parametrize(("token", "kind"), [(None, "missing"), ("", "missing"), ("a.b", "malformed"),
                                             ("x" * 5000, "malformed")])
def test_what_is_not_a_token_is_refused_by_kind(tokens: Tokens, token: str | None, kind: str) -> None:
    with pytest.raises(AuthError) as refused:
        tokens.verify(token)
    assert refused.value.kind == kind


def test_a_non_string_sub_is_refused(tokens: Tokens) -> None:
    with pytest.raises(AuthError, match="token refused: Subject must be a string") as refused:
        tokens.verify(tokens.sign({"sub": 5, "exp": int(time.time()) + 60}))
    assert refused.value.kind == "claims"


def test_a_short_secret_and_a_bad_user_name_are_clear_errors(tokens: Tokens) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Tokens("short")
    with pytest.raises(ValueError, match="not a valid user name"):
        tokens.issue("ada lovelace")


def _part(data: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


ODD_ALGORITHM = f'{_part({"alg": "ü" * 60, "typ": "JWT"})}.{_part({"sub": "ada"})}.'  # made by hand


@pytest.mark.parametrize("odd", ["algorithm", "user"])
def test_a_refusal_with_a_long_non_ascii_reason_still_closes_cleanly(server: LabServer, tokens: Tokens,
                                                                     odd: str) -> None:
    token = ODD_ALGORITHM if odd == "algorithm" else tokens.issue("日" * 32)  # not one of USERS

    async def scenario() -> tuple[int | None, str | None]:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as client:
            await client.send({"type": "auth", "token": token})
            return await client.wait_closed(5.0), client.close_reason

    code, reason = wslab.run_sync(scenario())
    assert code == 1008 and reason is not None and reason.startswith("auth: token refused")
    assert len(reason.encode()) <= 123


def test_an_oversized_first_frame_is_closed_with_1009_before_it_is_parsed(server: LabServer) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as client:
            await client.connection.send("x" * (MAX_AUTH_FRAME + 1))
            return await client.wait_closed(5.0), client.close_reason

    assert wslab.run_sync(scenario()) == (1009, f"an auth frame is at most {MAX_AUTH_FRAME} bytes")


def test_an_empty_first_frame_is_refused_as_not_json(server: LabServer) -> None:
    async def scenario() -> str | None:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as client:
            await client.connection.send("")
            await client.wait_closed(5.0)
            return client.close_reason

    assert wslab.run_sync(scenario()) == "auth: not valid JSON (Expecting value)"


def test_a_broken_renewal_is_answered_as_an_auth_problem(server: LabServer, tokens: Tokens) -> None:
    async def scenario() -> object:
        async with wslab.connect(server, "/chat/lobby", transcript=Transcript(live=False)) as ada:
            await ada.send({"type": "auth", "token": tokens.issue("ada")})
            await ada.recv_json()
            await ada.send({"type": "auth"})
            return await ada.recv_json()

    assert wslab.run_sync(scenario()) == {"type": "error", "message": 'auth: missing "token"'}


class LobbyOnly(SecureRooms):
    def allowed(self, identity: Identity, room_name: str) -> bool:
        return room_name in identity.claims.get("rooms", [room_name])


def test_a_renewal_that_no_longer_allows_the_room_closes_the_connection(tokens: Tokens) -> None:
    async def scenario(server: LabServer) -> tuple[int | None, str | None]:
        async with wslab.connect(server, "/chat/attic", transcript=Transcript(live=False)) as ada:
            await ada.send({"type": "auth", "token": tokens.issue("ada")})
            await ada.recv_json()
            await ada.send({"type": "auth", "token": tokens.issue("ada", rooms=["lobby"])})
            return await ada.wait_closed(5.0), ada.close_reason

    with wslab.serve(secure_app(LobbyOnly(tokens)), name="t-auth-renew") as server:
        assert wslab.run_sync(scenario(server)) == (1008, "ada may no longer be in the room 'attic'")


def test_an_allowed_hook_that_raises_closes_with_1011_and_is_logged(tokens: Tokens) -> None:
    class Broken(SecureRooms):
        def allowed(self, identity: Identity, room_name: str) -> bool:
            return bool(identity.claims["rooms"])

    with wslab.serve(secure_app(Broken(tokens)), name="t-auth-broken") as server:
        outcome = wslab.run_sync(attempt(server, "/chat/lobby", tokens.issue("ada"), carry="auth frame"))
        assert server.wait_idle(5.0)
        assert "KeyError: 'rooms'" in "\n".join(server.log.lines("ERROR"))
    assert outcome == 'accepted, then closed by the server: 1011 (internal error) "internal error"'


# -- the handshake checks ------------------------------------------------------------------------------
def header_app() -> FastAPI:
    """/ws: the token in an Authorization header, refused before accept with 401 and the reason."""
    tokens = Tokens(users=USERS)
    app = FastAPI()
    app.state.tokens = tokens

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        try:
            identity = tokens.verify(bearer_token(websocket))
        except AuthError as exc:
            await refuse(websocket, 401, str(exc))
            return
        await websocket.accept()
        await websocket.send_text(f"hello {identity.user}")
        await websocket.close()

    return app


def test_a_header_token_is_refused_before_accept_with_401_and_the_reason() -> None:
    app = header_app()
    with wslab.serve(app, name="t-auth-header") as server:
        missing = wslab.run_sync(attempt(server, "/ws", None, carry="header"))
        old = app.state.tokens.issue("ada", lifetime=-1)
        expired = wslab.run_sync(attempt(server, "/ws", old, carry="header"))
        valid = wslab.run_sync(attempt(server, "/ws", app.state.tokens.issue("ada"), carry="header"))
    assert missing == "HTTP 401, body: no token: log in first, then send the token"
    assert expired == "HTTP 401, body: token expired: log in again"
    assert valid == "accepted; first frame: hello ada"


class Headers(dict[str, str]):
    pass


class FakeSocket:
    """Just what origin_allowed and bearer_token read."""

    def __init__(self, **headers: str) -> None:
        self.headers = Headers({k.replace("_", "-"): v for k, v in headers.items()})


def test_origin_allowed_refuses_a_single_string_for_a_collection() -> None:
    with pytest.raises(TypeError, match="not one string"):
        socket = FakeSocket(host="a.example", origin="https://a.example")
        origin_allowed(socket, "https://a.example")  # type: ignore[arg-type]


@pytest.mark.parametrize(("headers", "allowed", "expected"), [
    ({"host": "127.0.0.1:8000"}, None, True),  # not a browser
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}, None, True),
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8666"}, None, False),  # another port
    ({"host": "127.0.0.1:8000", "origin": "https://evil.example"}, None, False),
    ({"host": "127.0.0.1:8000", "origin": "null"}, None, False),
    ({"host": "hub.example", "origin": "https://hub.example/"}, None, True),
    ({"host": "127.0.0.1:8000", "origin": "https://Chat.Example.org"}, {"https://chat.example.org"}, True),
    ({"host": "chat.example.org", "origin": "https://chat.example.org"}, {"https://other.example"}, False),
])
def test_origin_allowed(headers: dict[str, str], allowed: set[str] | None, expected: bool) -> None:
    assert origin_allowed(FakeSocket(**headers), allowed) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [
    ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None),
    ("", None),
])
def test_bearer_token(value: str, expected: str | None) -> None:
    assert bearer_token(FakeSocket(authorization=value)) == expected  # type: ignore[arg-type]


def test_cors_middleware_does_not_stop_a_cross_site_websocket_but_the_origin_check_does() -> None:
    token = Tokens(NAIVE_SECRET).issue("ada")
    evil = "http://127.0.0.1:8666"
    with wslab.serve(naive_cookie_app(allow_origins=["http://127.0.0.1:8000"]), name="t-auth-cors") as server:
        stolen = wslab.run_sync(attempt(server, "/ws/inbox", token, carry="cookie", origin=evil))
    assert json.loads(stolen.split("first frame: ")[1])["messages"] == ["bo: the door code is 4711"]

    guarded = FastAPI()

    @guarded.websocket("/ws/inbox")
    async def inbox(websocket: WebSocket) -> None:
        if not origin_allowed(websocket):
            await refuse(websocket, 403, "cross-site connections are refused")
            return
        await websocket.accept()
        await websocket.close()

    with wslab.serve(guarded, name="t-auth-guarded") as server:
        refused = wslab.run_sync(attempt(server, "/ws/inbox", token, carry="cookie", origin=evil))
    assert refused == "HTTP 403, body: cross-site connections are refused"


def test_authenticate_returns_none_when_the_client_leaves_first(tokens: Tokens) -> None:
    results: list[object] = []
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        results.append(await authenticate(websocket, tokens))

    async def scenario(server: LabServer) -> None:
        async with wslab.connect(server, "/ws", transcript=Transcript(live=False)):
            pass

    with wslab.serve(app, name="t-auth-leave") as server:
        wslab.run_sync(scenario(server))
        assert server.wait_idle(5.0)
    assert results == [None]


def test_parse_origins_reads_a_comma_separated_list_as_origin_allowed_compares_them() -> None:
    assert parse_origins(" https://Chat.Example.org/, http://127.0.0.1:8000,") == [
        "https://chat.example.org", "http://127.0.0.1:8000"]


@pytest.mark.parametrize("text", ["chat.example.org", "https://chat.example.org/chat", "*", "null",
                                  "https://*.example.org:x", "ftp://example.org", "https://ada:pw@example.org",
                                  "https://example.org?x=1", "https://example.org:70000", " , "])
def test_parse_origins_refuses_what_is_not_an_origin_and_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"(is not an origin: write scheme://host\[:port\]|names no origin)"):
        parse_origins(text)

