"""A real browser from a cell or a test: headless Chromium driven by Playwright.

    browser = await launch()               # or: async with await launch() as browser:
    page = await browser.new_page()
    await page.goto(server.url)
    ...
    await browser.close()

It uses the first browser it finds: ``$WSLAB_CHROMIUM``; then, headless, Debian's
``chromium-headless-shell`` (the same engine without the desktop browser around it: the browser tests
take less than half the CPU with it); then Debian's ``/usr/bin/chromium``; then the Chromium that
``python -m playwright install chromium`` downloads (Playwright too runs its headless shell when
headless). If there is none, the error says how to get one.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from .exceptions import WslabError

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Playwright

__all__ = ["BrowserMissing", "LabBrowser", "chromium_path", "launch"]

HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"  # Debian's package of the same name; it shows no window
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


class BrowserMissing(WslabError):
    """No Chromium to drive was found."""


def chromium_path(*, headless: bool = True) -> str | None:
    """The Chromium executable to use, or None to let Playwright use the one it downloaded."""
    chosen = os.environ.get("WSLAB_CHROMIUM")
    if chosen:
        if shutil.which(chosen) is None:
            raise BrowserMissing(f"$WSLAB_CHROMIUM is {chosen!r}, which is not a program here: fix it, "
                                 "or unset it to use the chromium found on this machine.")
        return chosen
    candidates = (HEADLESS_SHELL, *CANDIDATES) if headless else CANDIDATES
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


class LabBrowser:
    """A running headless Chromium: :meth:`new_page` to open tabs, :meth:`close` when done (an
    ``async with`` block closes it too)."""

    def __init__(self, playwright: Playwright, browser: Browser) -> None:
        self._playwright = playwright
        self.browser = browser

    async def new_page(self, **options: Any) -> Page:
        """A new tab (Playwright's ``Browser.new_page``: ``viewport={"width": 900, "height": 600}``...)."""
        return await self.browser.new_page(**options)

    async def close(self) -> None:
        """Close the browser and stop Playwright's driver. Safe to call more than once."""
        if self.browser.is_connected():
            await self.browser.close()
        await self._playwright.stop()

    async def __aenter__(self) -> LabBrowser:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def launch(*, headless: bool = True) -> LabBrowser:
    """Start a headless Chromium (see the module's docstring for which one)."""
    from playwright.async_api import Error, async_playwright

    path = chromium_path(headless=headless)
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=path, headless=headless)
    except Error as exc:
        await playwright.stop()
        raise BrowserMissing(
            "No Chromium to drive here. On Debian or Ubuntu: sudo apt-get install chromium; "
            "elsewhere: python -m playwright install chromium. "
            f"(Playwright said: {str(exc).splitlines()[0]})") from None
    return LabBrowser(playwright, browser)
