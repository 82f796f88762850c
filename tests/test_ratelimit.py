"""The token bucket behind the complete app's flood protection."""

from __future__ import annotations

import pytest

from wslab.reference.ratelimit import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_through_then_the_next_frame_is_refused() -> None:
    limit = RateLimit(rate=5, burst=3, clock=Clock())
    assert [limit.take() for _ in range(4)] == [True, True, True, False]


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    limit = RateLimit(rate=5, burst=3, clock=clock)
    assert all(limit.take() for _ in range(3))
    clock.now += 0.2  # one token back at 5 per second
    assert [limit.take(), limit.take()] == [True, False]
    clock.now += 60  # a long pause refills to the burst, not to 300
    assert [limit.take() for _ in range(4)] == [True, True, True, False]


def test_a_steady_sender_at_the_rate_is_never_refused() -> None:
    clock = Clock()
    limit = RateLimit(rate=5, burst=1, clock=clock)
    for _ in range(50):
        assert limit.take()
        clock.now += 0.2


def test_the_reason_says_the_limit() -> None:
    reason = RateLimit(rate=2.5, burst=10).reason
    assert reason == "too many messages: at most 10 at once, then 2.5 per second"
    assert len(RateLimit(rate=1e9, burst=10**9).reason.encode()) <= 123


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (5, 0)])
def test_a_limit_that_could_never_let_anything_through_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="a rate limit needs rate > 0 and burst >= 1"):
        RateLimit(rate, burst)
