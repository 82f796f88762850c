from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from wslab.lab.browser import chromium_path


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
