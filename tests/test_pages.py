import urllib.request

import pytest

import wslab
from wslab.demos.echo import echo_app


def test_the_echo_page_builds_its_websocket_address_from_its_own_location() -> None:
    html = wslab.page("echo")
    assert 'new URL("ws", location.href)' in html
    assert "localhost:8000" not in html
    for handler in ("ws.onopen", "ws.onmessage", "ws.onclose"):
        assert handler in html
    assert "innerHTML" not in html.replace("never innerHTML", "")  # messages are shown as text


def test_an_unknown_page_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="There is no page 'nope'; the pages are: chat, echo\\."):
        wslab.page("nope")


def test_the_page_is_served_by_the_echo_app() -> None:
    with wslab.serve(echo_app(), name="t-page") as server, \
            urllib.request.urlopen(server.url, timeout=5) as response:
        assert response.status == 200
        assert "<title>wslab · echo</title>" in response.read().decode()


def test_the_echo_app_echoes_and_a_clean_close_logs_nothing() -> None:
    with wslab.serve(echo_app(), name="t-echo") as server:
        assert wslab.exchange(server, "/ws", "one", "two", show=False) == ["one", "two"]
        assert server.log.lines("WARNING") == []
