"""The browser pages through jupyter-server-proxy, as on JupyterHub and Binder: a real Jupyter server
(with a token and a base URL that is not ``/``) forwards ``<base_url>proxy/<port>/`` to servers started
the workbook's way, and a headless Chromium opens the address ``LabServer.browser_url`` gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from jupyter_process import running_jupyter
from playwright.sync_api import Browser, Page, expect
from test_browser import WAIT, login, present, say, sees
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import wslab
from wslab.demos.echo import echo_app
from wslab.lab.proxy import browser_url
from wslab.reference.app import create_app

BASE = "/hub-test/user/ada/"  # what JupyterHub gives a user's server, and sets as JUPYTERHUB_SERVICE_PREFIX
TOKEN = "wslab-proxy-test-token"


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Jupyter server with jupyter-server-proxy on a loopback port; yields its address (no path)."""
    with running_jupyter(tmp_path_factory.mktemp("jupyter"), token=TOKEN, base_url=BASE) as address:
        yield address


@pytest.fixture
def on_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSLAB_PROXY", raising=False)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", BASE)


def proxied(jupyter: str, server: wslab.LabServer) -> str:
    """The page's address as a learner opens it: the hub's address, then ``browser_url``. The token
    stands in for the login a hub user already has (Jupyter turns it into a cookie)."""
    assert server.browser_url == f"{BASE}proxy/{server.port}/"
    return f"{jupyter}{server.browser_url}?token={TOKEN}"


def open_page(browser: Browser, url: str, errors: list[str]) -> Page:
    page = browser.new_context().new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page


@pytest.mark.usefixtures("on_the_hub")
def test_two_pages_chat_through_the_proxy(jupyter: str, browser: Browser) -> None:
    errors: list[str] = []
    with wslab.serve(create_app(), name="proxied chat") as server:
        ada, bob = (open_page(browser, proxied(jupyter, server), errors) for _ in range(2))
        try:
            for page, name in ((ada, "ada"), (bob, "bob")):
                login(page, name)
                expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
            present(ada, "ada", "bob")
            say(ada, "hello through the proxy")
            sees(bob, "message", "hello through the proxy")
            say(bob, "and back")
            sees(ada, "message", "and back")
        finally:
            ada.context.close()
            bob.context.close()
    assert errors == []


@pytest.mark.usefixtures("on_the_hub")
def test_a_taken_name_is_refused_through_the_proxy_that_drops_close_reasons(jupyter: str,
                                                                           browser: Browser) -> None:
    errors: list[str] = []
    with wslab.serve(create_app(), name="proxied chat") as server:
        ada, impostor = (open_page(browser, proxied(jupyter, server), errors) for _ in range(2))
        try:
            login(ada, "ada")
            expect(ada.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
            login(impostor, "ada")
            expect(impostor.locator("#login-error")).to_contain_text("closed the chat connection without "
                                                                     "saying why", timeout=WAIT)
            present(ada, "ada")
        finally:
            ada.context.close()
            impostor.context.close()
    assert errors == []


@pytest.mark.usefixtures("on_the_hub")
def test_the_echo_page_through_the_proxy(jupyter: str, browser: Browser) -> None:
    errors: list[str] = []
    with wslab.serve(echo_app(), name="proxied echo") as server:
        page = open_page(browser, proxied(jupyter, server), errors)
        try:
            expect(page.locator("#log li.in").first).to_have_text("← Hello Server!", timeout=WAIT)
            expect(page.locator("#url")).to_have_text(f"{BASE}proxy/{server.port}/ws")
        finally:
            page.context.close()
    assert errors == []


def test_the_origin_check_admits_the_proxied_page_and_still_refuses_another_site(jupyter: str) -> None:
    app = create_app()
    with wslab.serve(app, name="proxied chat") as server:
        ws_url = f"{jupyter.replace('http', 'ws', 1)}{BASE}proxy/{server.port}/ws/chat/lobby?token={TOKEN}"
        token = app.state.rooms.tokens.issue("ada")
        with connect(ws_url, origin=jupyter, open_timeout=10) as ws:  # the proxied page's own origin
            ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(ws.recv(timeout=10)) == \
                {"type": "join", "user": "ada", "users": ["ada"], "version": 1}
        # jupyter-server-proxy accepts the browser's handshake before it opens its own to the app, so a
        # refusal (403 before accept) reaches the page as a close, with no frame before it.
        with connect(ws_url, origin="http://evil.example", open_timeout=10) as ws, \
                pytest.raises(ConnectionClosed):
            ws.send(json.dumps({"type": "auth", "token": token}))
            ws.recv(timeout=10)
        refusal = "refused before accept: HTTP 403 connections from pages at http://evil.example are refused"
        assert any(refusal in line for line in server.log.lines("INFO"))
        assert app.state.rooms.status() == []


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "http://127.0.0.1:8123/"),
    ({"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}, "/user/ada/proxy/8123/"),
    ({"JUPYTERHUB_SERVICE_PREFIX": "/user/ada"}, "/user/ada/proxy/8123/"),
    ({"WSLAB_PROXY": "/lab/proxy/{port}/"}, "/lab/proxy/8123/"),
    ({"WSLAB_PROXY": "https://hub.example.org/user/ada/proxy/"}, "https://hub.example.org/user/ada/proxy/8123/"),
    ({"WSLAB_PROXY": "/x/{port}", "JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}, "/x/8123/"),
    ({"WSLAB_PROXY": "off", "JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}, "http://127.0.0.1:8123/"),
], ids=["laptop", "hub", "hub without slash", "template", "prefix", "override wins", "off"])
def test_the_browser_address_follows_the_environment(environ: dict[str, str], expected: str) -> None:
    assert browser_url(8123, environ=environ) == expected


def test_a_lab_server_gives_its_browser_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSLAB_PROXY", raising=False)
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    with wslab.serve(echo_app(), name="laptop") as server:
        assert server.browser_url == f"{server.url}/"
        monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
        assert server.browser_url == f"/user/ada/proxy/{server.port}/"
