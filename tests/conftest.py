import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from wslab.lab.browser import chromium_path

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import apps.py


def unit_of(nodeid: str) -> str:
    """What one worker runs as a whole: a notebook's cells, in order, in one kernel; each chapter of
    test_notebooks.py (a kernel of its own, up to a minute); every other test file together, so that its
    module fixtures start once."""
    path, _, rest = nodeid.partition("::")
    return nodeid if path.endswith("test_notebooks.py") and "[" in rest else path


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Hand the workers of ``python run.py test`` whole units (:func:`unit_of`), longest first, and a
    new unit only when a worker is down to its last test, so that long units spread over the workers.

    xdist's own ``--dist loadgroup`` cannot do this: it renames node ids through an attribute that
    pytest 9.2 no longer reads, so its groups come apart. ``_split_scope`` is what xdist's own file and
    group schedulers override."""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _reschedule(self, node: Any) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
            elif self._pending_of(self.assigned_work[node]) <= 1:  # xdist's own waits for 2
                self._assign_work_unit(node)

    config.option.loadscopereorder = False  # keep the order pytest_collection_modifyitems gives
    return ByUnit(config, log)


# Measured with --durations: each takes 30 to 60 s, so they start early too.
LONG_FILES = ("test_checks.py", "test_scenarios.py", "test_checks_streaming.py", "test_browser.py")


def _slowest_first(item: pytest.Item) -> int:
    if item.path.name in ("test_notebooks.py", "test_jupyterlab.py"):
        return 0  # a chapter run twice in one kernel, or in JupyterLab: up to a minute each
    if item.path.name in LONG_FILES:
        return 1
    return 2 if item.path.suffix == ".ipynb" else 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest units first, so that no worker is left alone with a long one at the end."""
    items.sort(key=_slowest_first)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test module (the one :func:`wslab.lab.browser.chromium_path` finds, else
    Playwright's own); fails, never skips, when there is none."""
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        except PlaywrightError as exc:
            pytest.fail(f"The browser tests need Chromium and none runs here ({str(exc).splitlines()[0]}). "
                        "`python run.py test` installs Debian's chromium on a Debian machine as root; "
                        "elsewhere run `python run.py python -m playwright install chromium`.")
        yield chromium
        chromium.close()
