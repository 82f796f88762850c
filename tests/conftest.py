import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import apps.py

SLOWEST_FIRST = ("test_notebooks.py",)  # run whole notebooks in a kernel of their own, for minutes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest file first, so that with two workers (``./run test``: ``-n 2 --dist loadfile
    --no-loadscope-reorder``) it does not begin last and leave the other worker idle at the end."""
    items.sort(key=lambda item: item.path.name not in SLOWEST_FIRST)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, which ./run test installs


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test module; fails (never skips) when Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"The browser tests need Debian's chromium at {CHROMIUM} and it is missing: "
                    "run ./run test, which installs Debian's chromium.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()
