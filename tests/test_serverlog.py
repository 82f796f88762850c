"""Log lines read the same on every run: what changes from machine to machine is scrubbed."""

from __future__ import annotations

from wslab.lab.serverlog import scrub


def test_ports_and_pids_are_scrubbed() -> None:
    assert scrub("127.0.0.1:53211 - process [4242]") == "127.0.0.1:<port> - process [<pid>]"


def test_a_task_repr_loses_its_number_and_where_its_code_is() -> None:
    line = ("task: <Task finished name='Task-187' coro=<listen() done, defined at "
            "/tmp/ipykernel_1/123.py:7> exception=WebSocketDisconnect(1006, '')>")
    assert scrub(line) == "task: <Task finished coro=<listen()> exception=WebSocketDisconnect(1006, '')>"
