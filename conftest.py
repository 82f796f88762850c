"""How ``python run.py test`` runs the suite, wherever pytest is pointed (tests/, notebooks/ or both):
each chapter's student copy after the chapter, whole units spread over the xdist workers, longest first,
and nbval's kernels started dependably (tests/nbval_kernel.py). Fixtures for the tests are in
tests/conftest.py."""

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))  # for this file, and for the tests: apps.py...

import nbval_kernel  # noqa: E402  (found through the line above)
from student_copy import add_student_runs  # noqa: E402

nbval_kernel.install()


def unit_of(nodeid: str) -> str:
    """What one worker runs as a whole: a chapter's cells then its student copy's, in order, in one kernel;
    every other test file together, so that its module fixtures start once."""
    return nodeid.partition("::")[0]


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
    if item.path.suffix == ".ipynb" or item.path.name == "test_jupyterlab.py":
        return 0  # a chapter then its student copy in one kernel, or a chapter in JupyterLab: up to a minute
    return 1 if item.path.name in LONG_FILES else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each chapter's student copy after it (:mod:`student_copy`), then the longest units first, so that no
    worker is left alone with a long one at the end."""
    add_student_runs(items)
    items.sort(key=_slowest_first)



