"""What a check's bots wait for, in the chat protocol: the next frame, their own join after the token,
nothing more, a frame with some fields (extra fields are fine). Each raises a :class:`Mismatch` for the
step."""

from __future__ import annotations

from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.lab.client import LabClient

from .result import Mismatch

__all__ = ["has", "join", "next_frame", "nothing"]


async def next_frame(bot: LabClient, step: str, expected: Any, wait: float = 3.0, *,
                     presence: bool = True) -> Any:
    """The next frame ``bot`` receives, as JSON (skipping join and leave frames unless ``presence``); a
    :class:`Mismatch` for ``step`` if none comes."""
    try:
        for _ in range(20):
            frame = await bot.recv_json(wait)
            if presence or not (isinstance(frame, dict) and frame.get("type") in ("join", "leave")):
                return frame
        raise Mismatch(step, expected, "only join and leave frames")
    except TimeoutError:
        raise Mismatch(step, expected, f"nothing within {wait:g} s") from None
    except ConnectionClosed:
        raise Mismatch(step, expected, f"the connection closed: {bot.close_code} {bot.close_reason or ''}"
                       ) from None


async def join(bot: LabClient, token: str, step: str) -> Any:
    """Authenticate ``bot``; its first frame, which should be its ``join``."""
    await bot.send({"type": "auth", "token": token})
    return await next_frame(bot, step, "a join frame")


async def nothing(bot: LabClient, step: str, hint: str = "") -> None:
    try:
        frame = await bot.recv_json(0.5)
    except TimeoutError:
        return
    raise Mismatch(step, "(nothing)", frame, hint)


def has(frame: Any, expected: dict[str, Any], step: str, hint: str = "") -> None:
    """Like :func:`expect`, but extra fields (an id, a time) are fine."""
    if not (isinstance(frame, dict) and all(frame.get(key) == value for key, value in expected.items())):
        raise Mismatch(step, expected, frame, hint)
