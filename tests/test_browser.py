"""The complete app's chat page (``wslab/reference/static/chat.html``) in a real browser: Debian's
chromium-headless-shell (or chromium) driven by Playwright, against a real server per test. The page's test
hooks are listed at the top of the HTML.

``python3 run.py test`` installs a chromium; without one these tests fail (they never skip), saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Dialog, Page, expect

import wslab
from wslab.lab import browser as lab_browser
from wslab.lab.server import LabServer
from wslab.reference.app import AppRooms, create_app
from wslab.reference.broker import MemoryBroker
from wslab.reference.manager import Client
from wslab.reference.protocol import Leave, ServerFrame
from wslab.reference.rooms import Room
from wslab.reference.secure_rooms import identity_of

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT = 5000  # ms: the longest any step may take, except reconnecting after a restart
EVIL = "<img src=x onerror=alert(1)>"


@dataclass
class Chat:
    """Pages in one test, each in a browser context of its own (its own localStorage), and what they did
    wrong: JavaScript errors and dialogs (an ``alert`` means injected markup ran)."""

    browser: Browser
    server: LabServer
    contexts: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, *, width: int = 1100, height: int = 700) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))

        def dialog(d: Dialog) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.goto(self.server.url)
        return page

    def join(self, name: str, room: str = "lobby", *, passcode: str | None = None, **size: int) -> Page:
        page = self.open(**size)
        login(page, name, room, passcode)
        expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
        expect(page.locator("#text")).to_be_focused(timeout=WAIT)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def login(page: Page, name: str, room: str = "lobby", passcode: str | None = None) -> None:
    page.fill("#name", name)
    page.fill("#room", room)
    if passcode is not None:
        page.fill("#passcode", passcode)
    page.click("#join")


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def items(page: Page, kind: str) -> Any:
    return page.locator(f'#messages li[data-type="{kind}"]')


def sees(page: Page, kind: str, content: str) -> None:
    """Wait until ``page`` shows a ``kind`` item whose text is exactly ``content``."""
    expect(items(page, kind).locator(".content").filter(has_text=re.compile(f"^{re.escape(content)}$"))
           ).to_have_count(1, timeout=WAIT)


def present(page: Page, *users: str) -> None:
    """Wait until the presence list is exactly ``users``, in this order."""
    expect(page.locator("#users li")).to_have_count(len(users), timeout=WAIT)
    for index, user in enumerate(users):
        expect(page.locator("#users li").nth(index)).to_have_attribute("data-user", user, timeout=WAIT)


def announce(server: LabServer, rooms: AppRooms, text: str) -> int:
    return server.call(rooms.announce(text))  # on the server's loop, as an instructor's cell does it


def rooms_of(app: FastAPI) -> AppRooms:
    rooms: AppRooms = app.state.rooms
    return rooms


@pytest.fixture
def make_chat(browser: Browser) -> Iterator[Callable[[FastAPI], Chat]]:
    chats: list[Chat] = []

    def make(app: FastAPI) -> Chat:
        chat = Chat(browser, wslab.serve(app, name="t-browser"))
        chats.append(chat)
        return chat

    yield make
    for chat in chats:
        chat.close()
        chat.server.stop()
    for chat in chats:
        assert chat.errors == [], f"JavaScript errors on the page: {chat.errors}"
        assert chat.dialogs == [], f"dialogs fired: {chat.dialogs}"


@pytest.fixture
def app() -> FastAPI:
    return create_app()


@pytest.fixture
def chat(make_chat: Callable[[FastAPI], Chat], app: FastAPI) -> Chat:
    return make_chat(app)


# -- the browser ---------------------------------------------------------------------------------------
def test_headless_runs_debians_headless_shell_and_a_window_the_full_chromium(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSLAB_CHROMIUM", raising=False)
    installed = {lab_browser.HEADLESS_SHELL, "/usr/bin/chromium"}
    monkeypatch.setattr(lab_browser.os, "access", lambda path, _mode: path in installed)
    assert lab_browser.chromium_path() == lab_browser.HEADLESS_SHELL
    assert lab_browser.chromium_path(headless=False) == "/usr/bin/chromium"  # the shell shows no window
    installed.remove(lab_browser.HEADLESS_SHELL)
    assert lab_browser.chromium_path() == "/usr/bin/chromium"
    monkeypatch.setenv("WSLAB_CHROMIUM", "/usr/bin/chromium")  # a choice in the environment wins
    installed.add(lab_browser.HEADLESS_SHELL)
    monkeypatch.setattr(lab_browser.shutil, "which", lambda program: program)
    assert lab_browser.chromium_path() == "/usr/bin/chromium"


# -- the page itself -------------------------------------------------------------------------------
def test_the_page_builds_every_address_from_its_own_location_and_shows_text_as_text() -> None:
    html = wslab.page("chat")
    for address in ('new URL("token", location.href)', 'new URL("status", location.href)',
                    'new URL("ws/chat/" + encodeURIComponent(room), location.href)'):
        assert address in html
    assert "localhost" not in html and "127.0.0.1" not in html
    assert "token=" not in html  # the token goes in the first frame, never in a URL
    for markup in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert markup not in html
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)  # nothing loaded from elsewhere


# -- chatting --------------------------------------------------------------------------------------
def test_two_people_in_a_room_see_each_other_and_each_others_messages(chat: Chat) -> None:
    ada = chat.join("ada")
    bo = chat.join("bo")
    present(ada, "ada", "bo")
    present(bo, "bo", "ada")
    expect(ada.locator('#users li[data-user="ada"]')).to_contain_text("you")
    expect(ada.locator('#messages li[data-type="join"] .user')).to_have_text(["bo"], timeout=WAIT)

    say(ada, "hello bo")
    sees(bo, "message", "hello bo")
    say(bo, "hi ada")
    sees(ada, "message", "hi ada")
    expect(ada.locator('#messages li.own[data-type="message"] .content')).to_have_text(["hello bo"])
    expect(bo.locator('#messages li[data-type="message"]:not(.own) .user')).to_have_text(["ada"])


class ForgetfulRoom(Room):
    """Tells cy nothing of the room's first leave, as a server that drops a change would."""

    forgot = False

    def broadcast(self, frame: ServerFrame | dict[str, Any], *, exclude: Client | None = None) -> None:
        if isinstance(frame, Leave) and not self.forgot and "cy" in self.members:
            self.forgot, exclude = True, self.members["cy"]
        super().broadcast(frame, exclude=exclude)


class ForgetfulBroker(MemoryBroker):
    def room(self, name: str) -> Room:
        return ForgetfulRoom(name)


def test_a_page_that_missed_a_change_asks_for_the_whole_list_and_shows_it(
        make_chat: Callable[[FastAPI], Chat]) -> None:
    chat = make_chat(create_app(broker=ForgetfulBroker()))
    cy, ada, bo = chat.join("cy"), chat.join("ada"), chat.join("bo")
    present(cy, "cy", "ada", "bo")  # from the changes, each in step
    bo.click("#leave")  # cy is not told
    present(ada, "ada", "cy")  # bo's leave has reached the others
    ada.click("#leave")  # cy is told, with a version that shows one went missing: it asks, and gets the list
    present(cy, "cy")
    expect(cy.locator("#state")).to_have_attribute("data-resyncs", "1", timeout=WAIT)
    for page in (ada, bo):
        expect(page.locator("#state")).not_to_have_attribute("data-resyncs", re.compile(".*"))


def test_a_page_in_another_room_does_not_see_the_messages(chat: Chat) -> None:
    ada = chat.join("ada")
    cy = chat.join("cy", "kitchen")
    say(ada, "lobby only")
    sees(ada, "message", "lobby only")  # back from the server: the lobby has had it
    say(cy, "kitchen only")  # so had it reached the kitchen, it would be there before this one
    sees(cy, "message", "kitchen only")
    expect(items(cy, "message")).to_have_count(1)
    expect(items(cy, "join")).to_have_count(0)
    present(cy, "cy")
    present(ada, "ada")
    expect(items(ada, "message")).to_have_count(1)


def test_a_private_message_reaches_only_its_target(chat: Chat) -> None:
    ada = chat.join("ada")
    bo = chat.join("bo")
    cy = chat.join("cy")
    present(ada, "ada", "bo", "cy")
    ada.click('#users li[data-user="bo"]')  # clicking a person makes the composer private to them
    expect(ada.locator("#to")).to_have_value("bo")
    expect(ada.locator("#private-hint")).to_be_visible()
    say(ada, "psst, bo")
    sees(bo, "private", "psst, bo")
    expect(items(bo, "private").locator(".user")).to_have_text(["ada → you"])
    sees(ada, "private", "psst, bo")
    expect(items(ada, "private").locator(".user")).to_have_text(["you → bo"])

    say(ada, "/msg bo and again")  # the command, without leaving the private mode first
    sees(bo, "private", "and again")
    ada.click("#to-everyone")
    expect(ada.locator("#to")).to_have_value("")
    say(ada, "now everyone")
    sees(cy, "message", "now everyone")
    sees(bo, "message", "now everyone")
    expect(items(cy, "private")).to_have_count(0)
    expect(cy.locator("#messages")).not_to_contain_text("psst")
    expect(cy.locator("#messages")).not_to_contain_text("and again")


def test_markup_in_a_message_is_shown_as_text(chat: Chat) -> None:
    ada = chat.join("ada")
    bo = chat.join("bo")
    say(ada, EVIL)
    sees(bo, "message", EVIL)
    sees(ada, "message", EVIL)
    for page in (ada, bo):
        expect(page.locator("#messages img")).to_have_count(0)
    say(bo, "after")  # a later message: had the img been created, its onerror would have fired by now
    sees(ada, "message", "after")
    assert chat.dialogs == []


def test_an_announcement_reaches_every_page_in_every_room(chat: Chat, app: FastAPI) -> None:
    pages = [chat.join("ada"), chat.join("cy", "kitchen")]
    assert announce(chat.server, rooms_of(app), "Break! Back at 11:00") == 2
    for page in pages:
        sees(page, "announcement", "Break! Back at 11:00")
        expect(items(page, "announcement").locator(".user")).to_have_text(["Announcement"])


# -- the connection --------------------------------------------------------------------------------
def test_the_page_reconnects_when_the_notebook_serves_the_app_again(
        make_chat: Callable[[FastAPI], Chat]) -> None:
    chat = make_chat(create_app())
    ada = chat.join("ada")
    bo = chat.join("bo")
    chat.server.stop()
    for page in (ada, bo):
        expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
        expect(page.locator("#banner")).to_contain_text(re.compile(r"Connection lost: reconnecting in \d+ s"))
        expect(page.locator("#banner")).not_to_contain_text("..")
        expect(page.locator("#users li")).to_have_count(0)  # nobody is known to be there while away
    chat.server = wslab.serve(create_app(), name="t-browser")  # a cell run again: same name, same port
    for page in (ada, bo):
        expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=20_000)
        expect(page.locator("#state")).to_have_text("connected")
        expect(page.locator("#banner")).to_be_hidden()
    present(ada, "ada", "bo")
    say(bo, "still here")
    sees(ada, "message", "still here")


def test_a_page_whose_server_never_comes_back_stops_retrying_and_says_so(
        make_chat: Callable[[FastAPI], Chat]) -> None:
    chat = make_chat(create_app())
    ada = chat.open()
    ada.context.add_init_script("window.WSLAB_GIVE_UP_AFTER = 2")  # read as the page loads
    ada.reload()
    login(ada, "ada")
    expect(ada.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    chat.server.stop()
    expect(ada.locator("#state")).to_have_attribute("data-state", "closed", timeout=20_000)
    expect(ada.locator("#banner")).to_contain_text("Not connected: the chat has not come back for 2 s.")
    expect(ada.locator("#banner")).to_contain_text("Retry when the server runs again.")
    expect(ada.locator("#retry")).to_be_visible()
    chat.server = wslab.serve(create_app(), name="t-browser")
    ada.locator("#retry").click()
    expect(ada.locator("#state")).to_have_attribute("data-state", "open", timeout=20_000)


def test_the_token_is_renewed_before_it_expires(chat: Chat, app: FastAPI) -> None:
    rooms = rooms_of(app)
    rooms.tokens.lifetime = 6  # the page renews a short token after 80% of its life, a long one 60 s early

    async def connection() -> tuple[Any, float]:
        client = rooms.rooms["lobby"].members["ada"]
        return client, identity_of(client).expires_at

    ada = chat.join("ada")
    client, expires = chat.server.call(connection())  # at once: on a busy machine bo's join can take seconds
    expect(ada.locator("#state")).to_have_attribute("data-renewals", "0")
    bo = chat.join("bo")
    expect(ada.locator("#state")).to_have_attribute("data-renewals", "1", timeout=WAIT)
    say(ada, "renewed")  # frames are handled in order: once bo sees this, the renewal was handled
    sees(bo, "message", "renewed")
    renewed_client, renewed_expires = chat.server.call(connection())
    assert renewed_client is client  # the same connection, not a reconnection after a close
    assert renewed_expires > expires
    expect(ada.locator("#state")).to_have_attribute("data-state", "open")
    expect(items(bo, "leave")).to_have_count(0)


# -- logging in ------------------------------------------------------------------------------------
def test_a_passcode_server_asks_for_it_and_refuses_a_wrong_one(make_chat: Callable[[FastAPI], Chat]) -> None:
    chat = make_chat(create_app(passcode="open sesame"))
    page = chat.open()
    expect(page.locator("#passcode")).to_be_visible(timeout=WAIT)  # GET /status says one is needed
    login(page, "ada", passcode="open barley")
    expect(page.locator("#login-error")).to_have_text(re.compile("Wrong passcode"), timeout=WAIT)
    expect(page.locator("#state")).to_have_attribute("data-state", "closed")
    expect(page.locator("#passcode")).to_be_focused()
    page.fill("#passcode", "open sesame")
    page.click("#join")
    expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    expect(page.locator("#login")).to_be_hidden()


def test_bad_and_taken_names_are_explained_and_the_form_remembers(chat: Chat) -> None:
    chat.join("ada", "lab")
    page = chat.open()
    login(page, "no spaces please", "lab")
    expect(page.locator("#login-error")).to_have_text(re.compile("not a valid name"), timeout=WAIT)
    login(page, "ada", "lab")
    expect(page.locator("#login-error")).to_have_text(re.compile("already taken in #lab: pick another name"),
                                                      timeout=WAIT)
    expect(page.locator("#name")).to_be_focused()
    login(page, "ada2", "lab")
    expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    page.reload()  # name and room are remembered in localStorage
    expect(page.locator("#name")).to_have_value("ada2")
    expect(page.locator("#room")).to_have_value("lab")


def test_switching_rooms_moves_the_person(chat: Chat) -> None:
    cy = chat.join("cy", "kitchen")
    ada = chat.join("ada")
    bo = chat.join("bo")
    present(bo, "bo", "ada")
    expect(ada.locator('#rooms li[data-room="kitchen"]')).to_contain_text("1", timeout=WAIT)
    ada.click('#rooms li[data-room="kitchen"]')
    expect(ada.locator("#room-name")).to_have_text("kitchen", timeout=WAIT)
    expect(ada.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    present(ada, "ada", "cy")
    present(bo, "bo")  # the old room saw ada leave
    sees(bo, "leave", "left")
    expect(items(cy, "join").locator(".user")).to_have_text(["ada"], timeout=WAIT)
    say(ada, "hi kitchen")
    sees(cy, "message", "hi kitchen")

    ada.fill("#new-room", "garden")  # a room typed in the sidebar
    ada.press("#new-room", "Enter")
    expect(ada.locator("#room-name")).to_have_text("garden", timeout=WAIT)
    present(ada, "ada")
    present(cy, "cy")
    ada.click("#leave")
    expect(ada.locator("#login")).to_be_visible()
    expect(ada.locator("#state")).to_have_attribute("data-state", "closed")


def test_the_page_works_behind_a_path_prefix(make_chat: Callable[[FastAPI], Chat]) -> None:
    inner = create_app()
    outer = FastAPI()
    outer.mount("/user/ada/proxy/8000", inner)  # as jupyter-server-proxy serves it
    chat = make_chat(outer)
    page = chat.browser.new_context().new_page()
    chat.contexts.append(page.context)
    page.on("pageerror", lambda error: chat.errors.append(str(error)))
    page.goto(chat.server.url + "/user/ada/proxy/8000/")
    login(page, "ada")
    expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    say(page, "through the proxy")
    sees(page, "message", "through the proxy")


# -- what it looks like ----------------------------------------------------------------------------
def test_a_screenshot_of_a_workshop_session(chat: Chat, app: FastAPI) -> None:
    chat.join("dee", "kitchen")
    ada = chat.join("ada", width=1200, height=760)
    bo = chat.join("bo", width=390, height=780)
    cy = chat.join("cy_the_curious")
    present(ada, "ada", "bo", "cy_the_curious")
    say(ada, "Morning all! Did everyone get the server running?")
    sees(bo, "message", "Morning all! Did everyone get the server running?")
    say(bo, "Yes: wslab serve printed the address and the lobby works.")
    sees(ada, "message", "Yes: wslab serve printed the address and the lobby works.")
    say(cy, "Mine says 1008 'token expired' after an hour: is that expected?")
    sees(ada, "message", "Mine says 1008 'token expired' after an hour: is that expected?")
    say(cy, "/msg ada sorry, can you look at my notebook later?")
    sees(ada, "private", "sorry, can you look at my notebook later?")
    ada.click('#users li[data-user="cy_the_curious"]')
    say(ada, "Sure, after the break.")
    sees(cy, "private", "Sure, after the break.")
    announce(chat.server, rooms_of(app), "Coffee break: back at 11:00, then chapter 06 (the complete app)")
    for page in (ada, bo, cy):
        sees(page, "announcement", "Coffee break: back at 11:00, then chapter 06 (the complete app)")
    say(bo, "Yes, it is: the page renews its token a minute before it expires.")
    sees(ada, "message", "Yes, it is: the page renews its token a minute before it expires.")
    sees(bo, "message", "Yes, it is: the page renews its token a minute before it expires.")
    expect(ada.locator('#rooms li[data-room="kitchen"]')).to_be_visible(timeout=WAIT)
    ARTIFACTS.mkdir(exist_ok=True)
    ada.screenshot(path=str(ARTIFACTS / "chat.png"), animations="disabled")
    bo.screenshot(path=str(ARTIFACTS / "chat-phone.png"), animations="disabled")
    bo.click("#menu")  # on a phone, people and rooms are in a drawer
    expect(bo.locator('#users li[data-user="ada"]')).to_be_visible()
    bo.screenshot(path=str(ARTIFACTS / "chat-phone-people.png"), animations="disabled")
    bo.click('#users li[data-user="ada"]')
    expect(bo.locator("#to")).to_have_value("ada")
    expect(bo.locator("#users")).not_to_be_visible()
    assert (ARTIFACTS / "chat.png").stat().st_size > 10_000
