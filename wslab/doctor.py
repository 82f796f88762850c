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

from .client import exchange
from .echo import echo_app
from .server import serve

__all__ = ["Diagnosis", "Finding", "diagnose"]

SUPPORTED_PYTHONS = ((3, 11), (3, 13))


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
    low, high = SUPPORTED_PYTHONS
    running = sys.version_info[:2]
    span = f"{low[0]}.{low[1]} to {high[0]}.{high[1]}"
    if low <= running <= high:
        return Finding(True, f"Python version is supported ({span})")
    return Finding(False, f"Python {running[0]}.{running[1]} is not supported ({span} are)",
                   f"install Python {high[0]}.{high[1]} and run `./run lab --python {high[0]}.{high[1]}`.")


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
                                    "run `./run lab` from the wslab folder; it installs everything."))
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
            with urllib.request.urlopen(server.url, timeout=5) as response:
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
    return findings


def diagnose(*, versions: bool = False) -> Diagnosis:
    """Check Python, the packages, and that a server starts, a page loads and a client connects.

    ``versions=True`` adds the installed version numbers (which differ between machines).
    """
    return Diagnosis([check_python(), *check_packages(versions=versions), *check_server()])
