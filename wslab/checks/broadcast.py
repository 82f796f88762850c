"""Checks for chapter 02, broadcast: a ``/count`` command and a broadcast that skips the sender.

Both exercises keep the hardened manager (:mod:`wslab.reference.manager`); every check also fails if the
server logged an error, so a handler that crashes when a client leaves does not pass.
"""

from __future__ import annotations

from typing import Any

from wslab.lab.client import LabClient, bots
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript

from .result import CheckResult, expect, run_check

__all__ = ["check_count", "check_no_echo"]


async def _nothing_for(bot: LabClient, what: str, wait: float = 0.5) -> None:
    try:
        got = await bot.recv(wait)
    except TimeoutError:
        return
    expect(got, "(nothing)", f"{bot.name} should not receive {what}")


def check_count(app: Any) -> CheckResult:
    """Exercise 2.1: the text ``/count`` is answered, to the sender only, with ``"N online"``; any
    other text is still broadcast as ``"name: text"``."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with bots(server, "/ws/{name}", ["ada", "bo"], transcript=transcript) as team:
            ada, bo = team["ada"], team["bo"]
            await ada.send("/count")
            expect(await ada.recv(), "2 online", "with ada and bo connected, /count should answer '2 online'")
            await _nothing_for(bo, "ada's /count or its answer")
            await bo.send("hi")
            for bot in team:
                expect(await bot.recv(), "bo: hi", "other messages should still reach everyone")
            async with bots(server, "/ws/{name}", ["cy"], transcript=transcript) as late:
                await late["cy"].send("/count")
                expect(await late["cy"].recv(), "3 online", "with three connected, /count says '3 online'")
            await ada.recv()  # "cy left the chat"
            await ada.send("/count")
            expect(await ada.recv(), "2 online", "after cy left, /count should say '2 online' again")

    return run_check(
        "Exercise 2.1 (count)", app, scenario,
        passed="/count answers the sender alone with the number of connected clients.",
        hint="inside the loop: if message == '/count': client.send(f'{len(manager)} online') and "
             "`continue`, so the command is not broadcast.",
    )


def check_no_echo(app: Any) -> CheckResult:
    """Exercise 2.2: a message reaches everyone except its sender."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with bots(server, "/ws/{name}", ["ada", "bo", "cy"], transcript=transcript) as team:
            await team["ada"].send("hello")
            for name in ("bo", "cy"):
                expect(await team[name].recv(), "ada: hello", f"{name} should receive ada's message")
            await _nothing_for(team["ada"], "her own message back")
            await team["cy"].send("hi ada")
            for name in ("ada", "bo"):
                expect(await team[name].recv(), "cy: hi ada", f"{name} should receive cy's message")
            await _nothing_for(team["cy"], "his own message back")

    return run_check(
        "Exercise 2.2 (no echo)", app, scenario,
        passed="messages reach everyone but their sender, and nobody waits on anybody.",
        hint="loop over manager.clients and call other.send(text) for each one that `is not client`; "
             "Client.send never waits, so this is still safe with slow clients.",
    )
