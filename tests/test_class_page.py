"""The instructor's page (``wslab/reference/static/class.html``) in Chromium (Playwright), with 30 learners
connected through the notebook's side of the classroom: the grid, live updates, a refresh, a server restart,
speaking to the room, the CSV export and a wrong key. The grid with 30 learners is saved as a screenshot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

import wslab
from wslab.lab.class_member import ClassMember
from wslab.lab.server import LabServer
from wslab.reference.classroom import Classroom, class_app

WAIT = 10_000  # ms: 30 learners reconnecting after a restart, on a loaded machine
SECRET = "k" * 40  # the same secret before and after the restart: the page's key stays valid
SCREENSHOT = Path(os.environ.get("WSLAB_CLASS_SCREENSHOT", Path(__file__).parent.parent / "test-artifacts"
                                 / "class-grid.png"))
EXERCISES = ["Exercise 1.1 (shout)", "Exercise 1.2 (sum)", "Exercise 1.3 (reverse)", "Exercise 2.1 (count)",
             "Exercise 2.2 (no echo)", "Exercise 3.1 (who)", "Exercise 3.2 (history)",
             "Exercise 4.1 (room permissions)"]
MISTAKES = {"Exercise 2.2 (no echo)": "not right yet: ada should not get her own message back.",
            "Exercise 3.2 (history)": "not right yet: the history should hold the last 10 messages, "
                                      "in order."}
NAMES = ["ada", "bo", "cy", "dee", "eli", "fay", "gus", "hal", "ida", "jo", "kai", "lu", "max", "nia", "oz",
         "pia", "quinn", "ray", "sol", "tess", "uma", "vic", "wren", "xia", "yan", "zoe", "abe", "bea", "cal",
         "dot"]


def status_of(n: int, e: int) -> str | None:
    """Learner n's last verdict on exercise e: the class is around chapter 2-3, some ahead, some behind."""
    reached = 3 + (n * 7) % 6  # how far learner n got
    if e > reached:
        return None
    if e == reached:
        return "not done" if n % 4 == 0 else "failed"
    return "failed" if (n + e) % 9 == 0 else "passed"


_classrooms: dict[int, Classroom] = {}  # the classroom each server (by port) serves


def serve_class() -> LabServer:
    """The class app on a port-0 server named t-class-page (serving it again keeps the port)."""
    app: FastAPI = class_app(passcode="owl", secret=SECRET)
    server = wslab.serve(app, name="t-class-page")
    _classrooms[server.port] = app.state.classroom
    return server


@pytest.fixture
def served() -> Iterator[LabServer]:
    server = serve_class()
    yield server
    server.stop()


@pytest.fixture
def learners(served: LabServer) -> Iterator[list[ClassMember]]:
    made = []
    for n, name in enumerate(NAMES):
        member = ClassMember(name, served.url, "owl", retry_min=0.1, retry_max=1.0).start()
        made.append(member)
        for e, exercise in enumerate(EXERCISES):
            status = status_of(n, e)
            if status == "failed":
                member.report(exercise, "failed", MISTAKES.get(exercise, "not right yet: the server did not "
                                                                         "answer in time."))
            elif status is not None:
                member.report(exercise, status)
    for n, member in enumerate(made):
        assert member.wait_delivered(sum(status_of(n, e) is not None for e in range(len(EXERCISES))), 10)
    yield made
    for member in made:
        member.stop(timeout=2)


def classroom_of(server: LabServer) -> Classroom:
    return _classrooms[server.port]


def open_page(browser: Browser, server: LabServer, key: str, errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/class#key={key}")
    return page


def shows_the_grid(page: Page) -> None:
    expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    expect(page.locator("#grid tbody tr")).to_have_count(len(NAMES), timeout=WAIT)
    expect(page.locator("#connected")).to_have_text(f"{len(NAMES)} of {len(NAMES)} connected", timeout=WAIT)
    for n in (0, 1, 5, 29):
        for e, exercise in enumerate(EXERCISES):
            cell = page.locator(f'tr[data-learner="{NAMES[n]}"] td[data-exercise="{exercise.split()[1]}"]')
            expect(cell).to_have_attribute("data-status", status_of(n, e) or "", timeout=WAIT)
    for e, exercise in enumerate(EXERCISES):
        passed = sum(status_of(n, e) == "passed" for n in range(len(NAMES)))
        expect(page.locator(f'thead th[data-passed="{exercise.split()[1]}"]')).to_have_text(
            f"{passed}/{len(NAMES)}", timeout=WAIT)


def test_the_page_shows_the_class_live_across_a_refresh_and_a_restart(
        browser: Browser, served: LabServer, learners: list[ClassMember]) -> None:
    errors: list[str] = []
    key = classroom_of(served).instructor_token()
    page = open_page(browser, served, key, errors)
    shows_the_grid(page)
    mistake = page.locator('#mistakes li[data-exercise="2.2"]')
    expect(mistake).to_contain_text("ada should not get her own message back.")
    failed = sum(status_of(n, 4) == "failed" for n in range(len(NAMES)))
    expect(mistake.locator(".count")).to_have_text(f"{failed} learners: ")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    # live: a verdict and a learner leaving show without a reload
    learners[0].report("Exercise 4.1 (room permissions)", "passed")
    expect(page.locator('tr[data-learner="ada"] td[data-exercise="4.1"]')).to_have_attribute(
        "data-status", "passed", timeout=WAIT)
    learners[1].stop()
    expect(page.locator('tr[data-learner="bo"]')).to_have_attribute("data-connected", "false", timeout=WAIT)
    expect(page.locator("#connected")).to_have_text(f"{len(NAMES) - 1} of {len(NAMES)} connected")

    # the CSV export is the server's own
    csv = page.evaluate("window.classCsv()")
    assert csv.replace("\r\n", "\n") == classroom_of(served).csv().replace("\r\n", "\n")

    # a refresh, then a restart: the learners resend their history to the new process
    page.reload()
    expect(page.locator('tr[data-learner="ada"] td[data-exercise="4.1"]')).to_have_attribute(
        "data-status", "passed", timeout=WAIT)
    served.stop()
    expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    restarted = serve_class()  # the same name keeps the port
    assert restarted.port == served.port
    expect(page.locator("#state")).to_have_attribute("data-state", "open", timeout=WAIT)
    expect(page.locator("#connected")).to_have_text(f"{len(NAMES) - 1} of {len(NAMES) - 1} connected",
                                                    timeout=WAIT)
    expect(page.locator('tr[data-learner="ada"] td[data-exercise="4.1"]')).to_have_attribute(
        "data-status", "passed", timeout=WAIT)
    expect(page.locator('tr[data-learner="dot"] td[data-exercise="1.1"]')).to_have_attribute(
        "data-status", status_of(29, 0) or "", timeout=WAIT)

    # speaking to the room: a hint for one exercise reaches every notebook
    page.select_option("#say-kind", "hint")
    page.fill("#say-exercise", "2.2")
    page.fill("#say-text", "skip the sender: compare the client, not the name")
    page.click("#say-send")
    expect(page.locator("#notices li").first).to_contain_text(
        "Hint for 2.2: skip the sender: compare the client, not the name", timeout=WAIT)
    for member in learners[2:]:
        line = "💡 Hint from your instructor for 2.2: skip the sender: compare the client, not the name"
        for _ in range(500):  # bounded; the notice travels through the learner's thread
            notices = member.take_notices()
            if notices:
                break
            page.wait_for_timeout(10)
        assert notices == [line], member.name
    page.context.close()
    assert errors == []


def test_a_wrong_key_or_none_is_refused_in_words(browser: Browser, served: LabServer) -> None:
    errors: list[str] = []
    learner_token = served.call(_learner_token(classroom_of(served)))
    page = open_page(browser, served, learner_token, errors)
    expect(page.locator("#state")).to_have_attribute("data-state", "refused", timeout=WAIT)
    expect(page.locator("#state")).to_contain_text("this is the instructor's page")
    page.goto(f"{served.url}/class")
    page.reload()
    expect(page.locator("#key-missing")).to_be_visible(timeout=WAIT)
    page.context.close()
    assert errors == []


async def _learner_token(classroom: Classroom) -> str:
    return classroom.tokens.issue("ada")
