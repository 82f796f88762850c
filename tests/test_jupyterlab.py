"""The student copies as a learner meets them: a real JupyterLab in Chromium, Run All, and every page the
chapter shows or links to must then work. Twice in a row, and after a kernel restart; on a laptop (JupyterLab
at ``/``) and on a hub (a base URL, the pages through jupyter-server-proxy, as on JupyterHub and Binder).

JupyterLab runs on a copy of ``notebooks/student`` (it saves what it runs), with ``window.jupyterapp``
exposed, through which the test runs JupyterLab's own commands: Run All, Restart Kernel and Run All.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_process import running_jupyter
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

STUDENT = Path(__file__).parent.parent / "notebooks" / "student"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
TOKEN = "wslab-jupyterlab-test-token"
HUB_BASE = "/hub-test/user/ada/"
RUN_ALL_WITHIN = 90_000  # ms for one chapter's Run All
PAGE_WITHIN = 20_000  # ms for a page to connect (a reconnect waits up to 10 s between attempts)

# Run All is over: the kernel is idle, no cell is queued or running, and every code cell ran, or one
# failed (JupyterLab stops Run All there). From the cells' models, not their DOM: JupyterLab renders only
# the cells near the viewport.
DONE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.sessionContext.session) return false;
  const kernel = panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter((cell) => cell.model.type === "code");
  const busy = cells.some((cell) => cell.model.executionState === "running");
  const failed = cells.some((cell) => cell.model.outputs.toJSON().some((out) => out.output_type === "error"));
  return kernel && kernel.status === "idle" && !busy &&
         (failed || cells.every((cell) => cell.model.executionCount !== null));
}"""
# The cells still queued or running, by number, with the first line of each.
RUNNING = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .map((cell, index) => [index, cell])
  .filter(([, cell]) => cell.model.type === "code" &&
                        (cell.model.executionCount === null || cell.model.executionState === "running"))
  .map(([index, cell]) => `${index}: ${cell.model.sharedModel.getSource().split("\\n")[0]}`)"""
# Errors in outputs, but those of cells tagged raises-exception (they show an error on purpose).
ERRORS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter((cell) => cell.model.type === "code" &&
                    !(cell.model.getMetadata("tags") || []).includes("raises-exception"))
  .flatMap((cell) => cell.model.outputs.toJSON().filter((out) => out.output_type === "error")
                                                .map((out) => `${out.ename}: ${out.evalue}`))"""


@dataclass
class Lab:
    address: str  # http://127.0.0.1:<port>, without the base URL
    base: str  # the base URL: "/" on a laptop, a user's prefix on a hub

    def url(self, path: str) -> str:
        return f"{self.address}{self.base}{path}?token={TOKEN}"


@pytest.fixture(scope="module", params=["laptop", "hub"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp(f"lab-{request.param}")
    shutil.copytree(STUDENT, home / "notebooks")
    base = HUB_BASE if request.param == "hub" else "/"
    # JUPYTERHUB_SERVICE_PREFIX reaches the kernels, as on a hub: their servers' browser_url is proxied.
    env = {"JUPYTERHUB_SERVICE_PREFIX": base} if request.param == "hub" else {}
    with running_jupyter(home, token=TOKEN, base_url=base, app="lab", root_dir=home,
                         options=["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
                                  "--ContentsManager.allow_hidden=False"], env=env) as address:
        yield Lab(address, base)


@pytest.fixture(scope="module")
def jupyterlab(browser: Browser, lab: Lab) -> Iterator[Page]:
    """JupyterLab open in a tab, in a workspace of its own (else it would restore another run's tabs). The
    chapters open in it one after the other, as a learner opens them: a second page would load JupyterLab
    again (5 to 7 s of CPU)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(lab.url("lab/workspaces/wslab-test/tree/notebooks"))
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")
    yield page
    context.close()


def open_notebook(page: Page, name: str) -> Panel:
    """Open ``notebooks/name`` in JupyterLab (File > Open) and wait for its kernel; it is then the current
    tab, on which Run All and Restart act."""
    page.evaluate("""async (path) => {
        await window.jupyterapp.commands.execute("docmanager:open", {path}); }""", f"notebooks/{name}")
    page.wait_for_function("""(name) => { const p = window.jupyterapp.shell.currentWidget;
                                          return p && p.context && p.context.path.endsWith(name) &&
                                                 p.sessionContext && p.sessionContext.session &&
                                                 p.sessionContext.session.kernel &&
                                                 p.sessionContext.session.kernel.status === "idle"; }""",
                           arg=name, timeout=60_000)
    return Panel(page, page.evaluate("() => window.jupyterapp.shell.currentWidget.id"))


@dataclass
class Panel:
    """A notebook's tab in JupyterLab: the page, and the panel's element id (other chapters stay open)."""

    page: Page
    id: str

    def locator(self, selector: str) -> Locator:
        return self.page.locator(f"[id='{self.id}'] {selector}")


def run_all(panel: Panel, *, restart: bool = False) -> None:
    """Run > Run All Cells, or Kernel > Restart Kernel and Run All Cells; return once every cell ran."""
    page = panel.page
    if restart:
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
        page.get_by_role("button", name="Confirm Kernel Restart").or_(
            page.locator(".jp-Dialog-button.jp-mod-accept")).first.click()
    else:
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:
        page.wait_for_function(DONE, timeout=RUN_ALL_WITHIN, polling=250)
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "jupyterlab-run-all-timeout.png", full_page=True)
        running = page.evaluate(RUNNING)
        pytest.fail(f"Run All did not finish within {RUN_ALL_WITHIN / 1000:g} s; still queued or running: "
                    f"{running} (screenshot in test-artifacts/)")
    assert page.evaluate(ERRORS) == []


def echo_works(panel: Panel) -> None:
    """Chapter 01's echo page, in its frame in the notebook, and in a tab of its own from the link."""
    panel.locator("iframe").last.scroll_into_view_if_needed()  # a cell off screen may not render its frame
    frame = panel.locator("iframe").last.content_frame
    try:
        expect(frame.locator("#state")).to_have_text("connected", timeout=PAGE_WITHIN)
    except AssertionError:
        ARTIFACTS.mkdir(exist_ok=True)
        panel.locator("iframe").last.screenshot(path=ARTIFACTS / "jupyterlab-echo-frame.png")
        shown = frame.locator("body").inner_text(timeout=2_000)
        pytest.fail(f"the echo page in its frame is not connected; it shows: {shown[:500]!r} "
                    "(screenshot in test-artifacts/)")
    expect(frame.locator("#log li.in").last).to_contain_text("Hello Server!", timeout=PAGE_WITHIN)


def chat_works(tab: Page, name: str) -> None:
    tab.locator("#name").fill(name)
    tab.locator("#room").fill("kitchen")  # as the chapter advises: the bots count what the lobby sends them
    tab.locator("#join").click()
    expect(tab.locator("#state")).to_have_attribute("data-state", "open", timeout=PAGE_WITHIN)


def link(panel: Panel, lab: Lab, text: str) -> str:
    """Where the notebook's link ``text`` leads: a page of the kernel's server, direct or proxied."""
    href = panel.locator("a").filter(has_text=text).last.get_attribute("href")
    assert href is not None
    return lab.address + href if href.startswith("/") else href


def test_chapter_01_echo_page_works_after_run_all_twice_and_after_a_restart(
        lab: Lab, jupyterlab: Page) -> None:
    notebook = open_notebook(jupyterlab, "01_echo.ipynb")
    run_all(notebook)
    echo_works(notebook)
    tab = jupyterlab.context.new_page()
    tab.goto(link(notebook, lab, "Open the echo page in a new tab"))
    expect(tab.locator("#state")).to_have_text("connected", timeout=PAGE_WITHIN)

    run_all(notebook)  # Run All a second time: the same server names keep their ports
    echo_works(notebook)
    expect(tab.locator("#state")).to_have_text("connected", timeout=PAGE_WITHIN)  # it reconnected

    run_all(notebook, restart=True)
    echo_works(notebook)
    tab.close()


def test_chapter_06_chat_page_works_after_run_all_twice(lab: Lab, jupyterlab: Page) -> None:
    notebook = open_notebook(jupyterlab, "06_complete_app.ipynb")
    run_all(notebook)
    tab = jupyterlab.context.new_page()
    tab.goto(link(notebook, lab, "Open the chat page"))
    chat_works(tab, "zed")

    run_all(notebook)
    expect(tab.locator("#state")).to_have_attribute("data-state", "open", timeout=PAGE_WITHIN)
    tab.close()
