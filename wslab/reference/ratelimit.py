"""How often one connection may send: a token bucket.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each frame takes one.
A person typing never notices it (a burst of pasted lines is fine); a script that floods the room runs
dry within ``burst`` frames and is told so.

    limit = RateLimit(rate=5, burst=20)
    if not limit.take():
        client.close(1008, limit.reason)
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["BURST", "RATE", "RateLimit"]

RATE = 5.0  # frames per second, sustained
BURST = 20  # frames at once


class RateLimit:
    """A token bucket: ``burst`` frames at once, then ``rate`` frames per second.

    ``clock`` (default :func:`time.monotonic`) is there for tests.
    """

    def __init__(self, rate: float = RATE, burst: int = BURST, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, not rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        """Take one token: True if there was one, False if the sender is over the limit."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    @property
    def reason(self) -> str:
        """The close reason for a sender over the limit (fits a close frame)."""
        return f"too many messages: at most {self.burst} at once, then {self.rate:g} per second"
