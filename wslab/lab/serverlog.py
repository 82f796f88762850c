"""Capture the log of each in-kernel server, so a cell can print it when it wants to.

uvicorn logs from the server's own thread. Printing those lines straight to stderr would drop them into
whatever notebook cell happens to be running, in no fixed order; instead every record a wslab server
thread writes to the uvicorn or asyncio loggers, or to any logger of the reference service
(``wslab.reference`` and one per module under it), is kept in that server's :class:`ServerLog` (and not
printed), and ``server.print_log()`` shows it, with ports, PIDs and file paths taken out so the output
is the same on every machine.
"""

from __future__ import annotations

import collections
import logging
import os
import pkgutil
import re
import sysconfig
import threading
import traceback
from collections.abc import Iterator

import wslab.reference

__all__ = ["ServerLog"]

CAPTURED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asyncio")
SERVICE = "wslab.reference"  # the service's loggers: this one, and logging.getLogger(__name__) in each module
_SCRUB = [
    (re.compile(r"(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):\d+"), r"\1:<port>"),
    (re.compile(r"\('(127\.0\.0\.1|::1)', \d+\)"), r"('\1', <port>)"),  # an address in an OSError's text
    (re.compile(r"process \[\d+\]"), "process [<pid>]"),
    # A task's repr, as in "Task exception was never retrieved": its number and where its code is.
    (re.compile(r" name='Task-\d+'"), ""),
    (re.compile(r"\(\) (?:running at|done, defined at) [^>]*>"), "()>"),
]
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def scrub(text: str) -> str:
    """Remove what differs from machine to machine (ports, PIDs) from a log line."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


class ServerLog:
    """The log records one in-kernel server wrote, newest last (at most ``maxlen`` are kept)."""

    def __init__(self, maxlen: int = 2000) -> None:
        self._records: collections.deque[logging.LogRecord] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._shown = 0  # how many records print_new() has already shown
        self._total = 0

    def append(self, record: logging.LogRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._total += 1

    @property
    def records(self) -> list[logging.LogRecord]:
        """Every record kept, oldest first."""
        with self._lock:
            return list(self._records)

    def lines(self, level: int | str = logging.WARNING, *, show_level: bool = True) -> list[str]:
        """The kept records at ``level`` or above, rendered as deterministic text."""
        threshold = logging.getLevelName(level) if isinstance(level, str) else level
        return [line for r in self.records if r.levelno >= threshold
                for line in render(r, show_level=show_level)]

    def take_new(self, level: int | str = logging.WARNING) -> list[str]:
        """Render the records written since the last call, at ``level`` or above."""
        threshold = logging.getLevelName(level) if isinstance(level, str) else level
        with self._lock:
            unseen = min(self._total - self._shown, len(self._records))
            new = list(self._records)[len(self._records) - unseen :] if unseen else []
            self._shown = self._total
        return [line for r in new if r.levelno >= threshold for line in render(r)]


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<name>\S+)\n\s*(?P<line>.*)$', re.M)


def render(record: logging.LogRecord, *, show_level: bool = True) -> Iterator[str]:
    """One record as text: its level and message; a traceback, whether attached to the record or
    written into its message, shrinks to two lines: the innermost frame of your own code (not of the
    standard library or an installed package) and the exception."""
    first, indent = (f"{record.levelname:<8} ", " " * 11) if show_level else ("", "")
    message = record.getMessage().rstrip()
    if message.startswith("Traceback (most recent call last):"):
        frames = [(m["file"], m["name"], m["line"]) for m in _FRAME.finditer(message)]
        yield f"{first}Traceback"
        yield from _short_traceback(frames, message.splitlines()[-1], indent)
        return
    yield f"{first}{scrub(message)}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        frames = [(f.filename, f.name, f.line or "") for f in traceback.extract_tb(exc.__traceback__)]
        yield from _short_traceback(frames, f"{type(exc).__name__}: {str(exc)}", indent)


def _short_traceback(frames: list[tuple[str, str, str]], last_line: str, indent: str) -> Iterator[str]:
    own = [(name, line) for file, name, line in frames if not file.startswith(_LIBRARY_DIRS)]
    if own:
        name, line = own[-1]
        yield f"{indent}in {name}(): {line.strip()}"
    yield f"{indent}{scrub(last_line)}"


class _Router(logging.Filter):
    """Sends each record logged on a server thread to that server's log, and lets others through."""

    def __init__(self) -> None:
        super().__init__()
        self.by_thread: dict[int, ServerLog] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        log = self.by_thread.get(record.thread) if record.thread is not None else None
        if log is None:
            return True
        log.append(record)
        return False


_router = _Router()


def _modules(path: list[str], prefix: str) -> Iterator[str]:
    """The names of the modules in the packages at ``path``, subpackages included, found without importing
    them."""
    for info in pkgutil.iter_modules(path, prefix):
        yield info.name
        if info.ispkg:
            finder_path = getattr(info.module_finder, "path", "")
            yield from _modules([os.path.join(finder_path, info.name.rsplit(".", 1)[-1])], f"{info.name}.")


def captured_loggers() -> list[str]:
    """Every logger a server's records are captured from: uvicorn's, asyncio's and the service's.

    A filter on a logger does not see what its child loggers log, so the service's loggers are listed one
    by one: ``wslab.reference``, a logger per module under it (what ``logging.getLogger(__name__)`` there
    makes, imported or not yet), and any other logger under it that exists by now."""
    service = [SERVICE, *_modules(list(wslab.reference.__path__), f"{SERVICE}.")]
    made = [name for name in logging.root.manager.loggerDict if name.startswith(f"{SERVICE}.")]
    return [*CAPTURED_LOGGERS, *dict.fromkeys([*service, *sorted(made)])]


def attach(thread_id: int, log: ServerLog) -> None:
    """Capture what ``thread_id`` logs into ``log`` (installs the router on first use)."""
    for name in captured_loggers():
        logger = logging.getLogger(name)
        if _router not in logger.filters:
            logger.addFilter(_router)
    service = logging.getLogger(SERVICE)
    if service.level == logging.NOTSET:
        service.setLevel(logging.INFO)  # as uvicorn's log_level="info" does for its own loggers
    _router.by_thread[thread_id] = log


def detach(thread_id: int) -> None:
    _router.by_thread.pop(thread_id, None)
