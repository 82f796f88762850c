"""The feeds on their own, on one event loop: deterministic prices, conflation with a window of acks, and
notifications numbered per user and queued per connection."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from wslab.reference.feeds import KEEP, Inbox, LiveNotifications, Notifications, PriceFeed, Prices

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def pending_after_a_few_turns(task: asyncio.Task[Any], turns: int = 5) -> bool:
    """Whether ``task`` is still waiting after the loop has run everything ready ``turns`` times over.
    Everything here happens on this one loop, so a task that could finish would have."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return not task.done()


def test_prices_are_a_seeded_walk_the_same_on_every_run() -> None:
    def walk(seed: int) -> list[Prices]:
        feed = PriceFeed(seed=seed)
        return [feed.latest] + [feed.step() for _ in range(20)]

    assert walk(5) == walk(5)
    assert [p.prices for p in walk(5)] == [p.prices for p in walk(5)]
    assert [p.prices for p in walk(5)] != [p.prices for p in walk(6)]
    assert [p.tick for p in walk(5)] == list(range(21))


def test_a_price_frame_holds_the_symbols_asked_for() -> None:
    prices = PriceFeed(("ACME", "GLOBEX")).latest
    assert prices.frame()["prices"].keys() == {"ACME", "GLOBEX"}
    globex = prices.prices["GLOBEX"]
    assert prices.frame({"GLOBEX"}) == {"type": "prices", "tick": 0, "prices": {"GLOBEX": globex}}
    assert prices.frame(set())["prices"] == {}


def test_a_subscriber_starts_with_the_latest_prices() -> None:
    async def scenario() -> int:
        feed = PriceFeed()
        feed.step()
        with feed.subscribe() as subscription:
            return (await subscription.next()).tick

    assert run(scenario()) == 1


def test_a_subscriber_that_does_not_ack_gets_nothing_more_then_only_the_latest() -> None:
    async def scenario() -> tuple[bool, int, int, bool]:
        feed = PriceFeed()
        with feed.subscribe() as subscription:
            await subscription.next()  # tick 0, not acknowledged yet
            waiting = asyncio.create_task(subscription.next())
            for _ in range(10):
                feed.step()
            held_back = await pending_after_a_few_turns(waiting)
            subscription.ack()
            latest = (await waiting).tick
            again = asyncio.create_task(subscription.next())  # acknowledged nothing since: waits
            still = await pending_after_a_few_turns(again)
            again.cancel()
            return held_back, latest, subscription.skipped, still

    assert run(scenario()) == (True, 10, 9, True)


def test_with_a_window_of_two_two_prices_may_be_in_flight() -> None:
    async def scenario() -> list[int]:
        feed = PriceFeed()
        with feed.subscribe(window=2) as subscription:
            ticks = [(await subscription.next()).tick]
            feed.step()
            ticks.append((await subscription.next()).tick)
            feed.step()
            third = asyncio.create_task(subscription.next())
            assert await pending_after_a_few_turns(third)
            subscription.ack()
            ticks.append((await third).tick)
            return ticks

    assert run(scenario()) == [0, 1, 2]


def test_extra_acks_do_not_widen_the_window() -> None:
    async def scenario() -> bool:
        feed = PriceFeed()
        with feed.subscribe(window=1) as subscription:
            for _ in range(5):
                subscription.ack()
            await subscription.next()
            feed.step()
            waiting = asyncio.create_task(subscription.next())
            pending = await pending_after_a_few_turns(waiting)
            waiting.cancel()
            return pending

    assert run(scenario())


def test_publishing_never_waits_and_reaches_every_subscriber() -> None:
    async def scenario() -> tuple[int, list[int], int]:
        feed = PriceFeed()
        with feed.subscribe() as ada, feed.subscribe() as bo:
            during = len(feed)
            for _ in range(1000):  # nobody reads: step still returns at once, and nothing piles up
                feed.step()
            ticks = [(await ada.next()).tick, (await bo.next()).tick]
        return during, ticks, len(feed)

    assert run(scenario()) == (2, [1000, 1000], 0)


def test_changed_returns_the_next_prices() -> None:
    async def scenario() -> int:
        feed = PriceFeed()
        waiting = asyncio.create_task(feed.changed())
        assert await pending_after_a_few_turns(waiting)
        feed.step()
        return (await waiting).tick

    assert run(scenario()) == 1


def test_run_steps_the_feed_until_cancelled() -> None:
    async def scenario() -> tuple[list[int], bool]:
        feed = PriceFeed()
        producer = asyncio.create_task(feed.run(0.001))
        ticks = [(await asyncio.wait_for(feed.changed(), 5.0)).tick for _ in range(3)]
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        return ticks, producer.cancelled()

    ticks, cancelled = run(scenario())
    assert ticks[0] >= 1 and ticks == sorted(set(ticks)) and cancelled


def test_notifications_are_numbered_per_user_and_reach_each_connection_in_order() -> None:
    async def scenario() -> tuple[list[Any], list[Any], list[Any], int]:
        hub = Notifications()
        with hub.subscribe("ada") as phone, hub.subscribe("ada") as laptop, hub.subscribe("bo") as bo:
            hub.publish("ada", {"text": "one"})
            hub.publish("bo", {"text": "hi bo"})
            hub.publish("ada", {"text": "two", "type": "mine", "seq": 99})  # type and seq are the hub's
            online = hub.online("ada")
            frames = ([await phone.get(), await phone.get()], [await laptop.get(), await laptop.get()],
                      [await bo.get()])
        return *frames, online

    first = {"type": "notification", "seq": 1, "text": "one"}
    second = {"type": "notification", "seq": 2, "text": "two"}
    assert run(scenario()) == ([first, second], [first, second],
                               [{"type": "notification", "seq": 1, "text": "hi bo"}], 2)


def test_an_inbox_leaves_the_hub_with_its_block_and_nothing_reaches_it_after() -> None:
    hub = Notifications()
    with hub.subscribe("ada") as inbox:
        assert hub.online("ada") == 1
    hub.publish("ada", {"text": "gone"})
    assert (hub.online("ada"), inbox.qsize(), hub._inboxes) == (0, 0, {})


def test_a_full_inbox_overflows_instead_of_dropping_quietly() -> None:
    hub = Notifications(max_pending=3)
    with hub.subscribe("ada") as inbox:
        for number in range(5):
            hub.publish("ada", {"n": number})
        assert inbox.overflowed and inbox.qsize() == 3


def seqs(inbox: Inbox) -> list[int]:
    """The seq of every frame waiting in ``inbox``, taken out."""
    return [inbox.get_nowait()["seq"] for _ in range(inbox.qsize())]


def test_a_connection_with_since_first_gets_the_kept_notifications_after_it_then_live_ones() -> None:
    hub = Notifications()
    for number in range(3):
        hub.publish("ada", {"n": number})
    hub.publish("bo", {"n": 0})
    with hub.subscribe("ada", since=1) as back, hub.subscribe("ada", since=3) as current, \
            hub.subscribe("ada", since=0) as first_time, hub.subscribe("ada") as new:
        hub.publish("ada", {"n": 3})
        assert [seqs(inbox) for inbox in (back, current, first_time, new)] == [
            [2, 3, 4], [4], [1, 2, 3, 4], [4]]


def test_only_the_last_keep_notifications_per_user_are_kept() -> None:
    hub = Notifications()
    for number in range(KEEP + 5):
        hub.publish("ada", {"n": number})
    with hub.subscribe("ada", since=0) as inbox:
        assert seqs(inbox) == list(range(6, KEEP + 6))
    assert [frame["seq"] for frame in hub.history("ada")] == list(range(6, KEEP + 6))
    assert hub.history("bo") == []


def test_what_is_kept_fits_in_an_inbox() -> None:
    assert Notifications(max_pending=5).keep == 5  # a replay never overflows the inbox it fills
    with pytest.raises(ValueError, match="a replay must fit in one inbox"):
        Notifications(max_pending=5, keep=6)


def test_live_notifications_keep_nothing_for_since() -> None:
    hub = LiveNotifications()
    hub.publish("ada", {"n": 0})
    with hub.subscribe("ada", since=0) as inbox:
        assert inbox.qsize() == 0
