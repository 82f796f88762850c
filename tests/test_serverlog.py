"""Log lines read the same on every run: what changes from machine to machine is scrubbed."""

from __future__ import annotations

import logging
import pkgutil

import pytest
from fastapi import FastAPI

import wslab
from wslab.lab.serverlog import scrub


def test_ports_and_pids_are_scrubbed() -> None:
    assert scrub("127.0.0.1:53211 - process [4242]") == "127.0.0.1:<port> - process [<pid>]"


def test_a_task_repr_loses_its_number_and_where_its_code_is() -> None:
    line = ("task: <Task finished name='Task-187' coro=<listen() done, defined at "
            "/tmp/ipykernel_1/123.py:7> exception=WebSocketDisconnect(1006, '')>")
    assert scrub(line) == "task: <Task finished coro=<listen()> exception=WebSocketDisconnect(1006, '')>"


def service_modules() -> list[str]:
    """wslab.reference and every module under it."""
    import wslab.reference

    found = pkgutil.walk_packages(wslab.reference.__path__, "wslab.reference.")
    return ["wslab.reference", *(info.name for info in found)]


def test_every_logger_of_the_service_is_captured_and_nothing_reaches_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A filter on a logger does not see what its children log: each module's logger must be captured itself.
    names = service_modules()

    async def log_from_each() -> None:
        for name in names:
            logging.getLogger(name).warning("from %s", name)

    with wslab.serve(FastAPI(), name="t-serverlog") as server:
        server.call(log_from_each())
        lines = server.log.lines()
    assert lines == [f"WARNING  from {name}" for name in names]
    assert capsys.readouterr().err == ""
