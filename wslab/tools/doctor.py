"""Check that this machine can run the workbook, one line per check, with a fix for each failure.

The minimum versions come from wslab's own package metadata (``pyproject.toml``), so there is one
list of requirements, not two. Lines name no version numbers unless ``versions=True``, so the setup
chapter's output is the same on every machine that passes.
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version
from typing import Any

from packaging.requirements import Requirement

from wslab.demos.echo import echo_app
from wslab.lab.browser import BrowserMissing, launch
from wslab.lab.client import exchange, run_sync
from wslab.lab.redis_server import RedisServer, RedisServerError
from wslab.lab.server import LabServer, serve

__all__ = ["Diagnosis", "Finding", "diagnose"]

OLDEST_PYTHON = (3, 11)  # the oldest Python the workbook runs on; every newer one is supported


@dataclass
class Finding:
    ok: bool
    what: str
    fix: str = ""

    def __str__(self) -> str:
        return f"✔ {self.what}" if self.ok else f"✘ {self.what}\n    Fix: {self.fix}"


@dataclass
class Diagnosis:
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def __str__(self) -> str:
        last = "All set: this machine can run the workbook." if self.ok else \
            "Some checks failed: apply the fixes above, restart the kernel and run this again."
        return "\n".join([*map(str, self.findings), last])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def check_python() -> Finding:
    low = f"{OLDEST_PYTHON[0]}.{OLDEST_PYTHON[1]}"
    running = sys.version_info[:2]
    if running >= OLDEST_PYTHON:
        return Finding(True, f"Python version is supported ({low} or newer)")
    return Finding(False, f"Python {running[0]}.{running[1]} is too old ({low} or newer is needed)",
                   f"install a newer Python and run `python run.py lab --python {low}` (or newer).")


def check_packages(*, versions: bool = False) -> list[Finding]:
    findings = []
    for line in requires("wslab") or []:
        requirement = Requirement(line)
        if requirement.marker is not None:  # optional extras such as [test]
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            findings.append(Finding(False, f"{requirement.name} is not installed",
                                    "run `python run.py lab` in the wslab folder; it installs everything."))
            continue
        shown = f" {installed}" if versions else ""
        if requirement.specifier.contains(installed, prereleases=True):
            findings.append(Finding(True, f"{requirement.name}{shown} ({requirement.specifier})"))
        else:
            too_old = f"{requirement.name} {installed} is too old ({requirement.specifier})"
            findings.append(Finding(False, too_old, f"pip install --upgrade '{requirement}'"))
    return findings


def check_server() -> list[Finding]:
    """Start an in-kernel server, load a page over HTTP and echo one WebSocket message."""
    try:
        server = serve(echo_app(), name="wslab doctor")
    except Exception as exc:
        return [Finding(False, f"an in-kernel server cannot start: {exc}",
                        "restart the kernel; if it persists, run `wslab doctor` in a terminal.")]
    findings = []
    with server:
        try:
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via $HTTP_PROXY
            with direct.open(server.url, timeout=5) as response:
                loaded = b"new WebSocket" in response.read()
            findings.append(Finding(loaded, "the browser page loads over HTTP",
                                    "something answers on 127.0.0.1 instead of the server: a proxy?"))
        except OSError as exc:
            findings.append(Finding(False, f"the browser page did not load: {exc}",
                                    "allow local connections to 127.0.0.1 (proxy settings, firewall)."))
        try:
            replies = exchange(server, "/ws", "ping", show=False)
            findings.append(Finding(replies == ["ping"], "an in-kernel server starts and a client connects",
                                    "check that nothing blocks connections to 127.0.0.1."))
        except Exception as exc:
            findings.append(Finding(False, f"a client cannot connect: {exc}",
                                    "allow local connections to 127.0.0.1 (proxy settings, firewall)."))
        findings.append(check_browser(server))
    return findings


async def _echo_in_browser(server: LabServer) -> str | None:
    async with await launch() as browser:
        page = await browser.new_page()
        await page.goto(server.url)
        reply = page.locator("#log li.in").first  # the page sends "Hello Server!" once connected
        await reply.wait_for(timeout=15_000)
        return await reply.text_content()


def check_browser(server: LabServer) -> Finding:
    """A headless Chromium opens the echo page, whose JavaScript connects and gets its echo back."""
    try:
        shown = run_sync(_echo_in_browser(server), timeout=60)
    except BrowserMissing as exc:  # its message says how to get one
        return Finding(False, "no Chromium for the browser parts (chapters 06 and 07)", str(exc))
    except Exception as exc:
        return Finding(False, f"the page did not work in a headless Chromium: {str(exc).splitlines()[0]}",
                       "restart the kernel and run this again; if it persists, run `wslab doctor` in a "
                       "terminal and show the instructor what it says.")
    return Finding(shown == "← Hello Server!",
                   "a headless Chromium opens the page and it talks over WebSocket",
                   f"the page showed {shown!r} instead of the echo: is a proxy rewriting local pages?")


def check_redis() -> Finding:
    """A ``redis-server`` starts on a free loopback port and stops again (chapter 08 runs one)."""
    try:
        RedisServer().start().stop()
    except RedisServerError as exc:  # its message says how to install it
        what, _, fix = str(exc).partition(". ")
        return Finding(False, f"no Redis for chapter 08: {what}",
                       fix or "run `wslab doctor` in a terminal and show the instructor what it says.")
    return Finding(True, "a Redis server starts on this machine (chapter 08)")


def diagnose(*, versions: bool = False) -> Diagnosis:
    """Check Python, the packages, that a server starts, a page loads and a client connects, that a
    headless Chromium runs the page, and that a Redis server starts.

    ``versions=True`` adds the installed version numbers (which differ between machines).
    """
    return Diagnosis([check_python(), *check_packages(versions=versions), *check_server(), check_redis()])
