import urllib.request

import pytest
from playwright.sync_api import Browser, expect

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
    with pytest.raises(ValueError, match="There is no page 'nope'; the pages are: chat, class, echo\\."):
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


def test_the_echo_page_reconnects_when_served_again_and_gives_up_on_a_server_gone_for_good(
        browser: Browser) -> None:
    server = wslab.serve(echo_app(), name="t-echo-page")
    context = browser.new_context()
    try:
        context.add_init_script("window.WSLAB_GIVE_UP_AFTER = 3")
        page = context.new_page()
        page.goto(server.url)
        replies = page.locator("#log li.in")
        expect(replies).to_have_text(["← Hello Server!"], timeout=5000)
        server = wslab.serve(echo_app(), name="t-echo-page")  # the cell run again: same port
        expect(page.locator("#state")).to_have_text("connected", timeout=10_000)
        expect(replies).to_have_text(["← Hello Server!", "← Hello Server!"])
        server.stop()
        expect(page.locator("#state")).to_contain_text("trying again in", timeout=5000)
        expect(page.locator("#state")).to_contain_text("the server did not come back; reload the page",
                                                       timeout=20_000)
    finally:
        context.close()
        server.stop()
