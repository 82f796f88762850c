"""One producer, many subscribers: what a price feed and a notification service keep for each subscriber.

Two policies for a subscriber that reads slower than the producer publishes, each right for its data:

- :class:`PriceFeed` **conflates**. Only the latest prices matter, so a :class:`Subscription` holds the
  newest prices not yet sent and nothing older: a slow subscriber skips prices, never builds a backlog,
  and publishing (:meth:`PriceFeed.step`) never waits for it. A subscription also hands out at most
  ``window`` prices before the client acknowledges one (:meth:`Subscription.ack`), which keeps the network
  buffers empty too (see :mod:`wslab.reference.streaming`).
- :class:`Notifications` **queues**. Each notification matters, so each connection of a user has an
  :class:`Inbox`, a bounded queue, in order; an inbox that overflows marks its client too slow (the
  endpoint closes it with 1013) rather than dropping a notification silently. It also keeps each user's
  last ``KEEP`` notifications, so that a client that comes back after a drop, saying the last ``seq`` it
  saw (``since``), first gets what it missed. (:class:`LiveNotifications` is the same without that
  memory: what chapter 05's exercise 5.2 starts from.)

Both are plain in-memory objects of one process, used from the server's event loop only (in a handler, or
through ``server.call``). No WebSocket code here: :mod:`wslab.reference.streaming` serves them.

    feed = PriceFeed()                      # deterministic: prices move only when you call step()
    with feed.subscribe() as subscription:
        feed.step()
        feed.step()
        prices = await subscription.next()  # tick 2; tick 1 was skipped (conflated)
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

__all__ = ["KEEP", "MAX_PENDING", "SYMBOLS", "Inbox", "LiveNotifications", "Notifications", "PriceFeed",
           "Prices", "Subscription"]

MAX_PENDING = 100  # notifications waiting for one connection before it counts as too slow
KEEP = 20  # notifications kept per user, for a client that comes back with since=N (at most MAX_PENDING)
SYMBOLS = ("ACME", "GLOBEX", "INITECH")
Frame = dict[str, Any]


@dataclass(frozen=True)
class Prices:
    """The feed's prices at one tick."""

    tick: int
    prices: Mapping[str, float] = field(hash=False)

    def frame(self, symbols: Iterable[str] | None = None) -> Frame:
        """The wire frame, for example ``{"type": "prices", "tick": 3, "prices": {"ACME": 101.5}}``;
        only ``symbols``, if given."""
        wanted = self.prices.keys() if symbols is None else set(symbols)
        return {"type": "prices", "tick": self.tick,
                "prices": {symbol: price for symbol, price in self.prices.items() if symbol in wanted}}


class PriceFeed:
    """One producer of prices for any number of subscribers. Publishing (:meth:`step`) never waits.

    Deterministic: the prices are a seeded random walk that moves once per :meth:`step`, so a notebook or
    a test decides when time passes; a real app calls :meth:`run` (``streaming_app(tick_every=...)``).
    Use it from the server's event loop only (in a handler, or through ``server.call``)::

        feed = PriceFeed()
        with feed.subscribe() as subscription:
            feed.step()
            prices = await subscription.next()      # tick 1
    """

    def __init__(self, symbols: Iterable[str] = SYMBOLS, *, seed: int = 5) -> None:
        self._random = random.Random(seed)
        self._cents = {symbol: self._random.randrange(20_00, 200_00) for symbol in symbols}
        self.symbols = tuple(self._cents)
        self.latest = Prices(0, self._quote())
        self._subscriptions: dict[Subscription, None] = {}
        self._changed = asyncio.Event()

    def _quote(self) -> dict[str, float]:
        return {symbol: cents / 100 for symbol, cents in self._cents.items()}

    def step(self) -> Prices:
        """Move every price one tick and offer the result to every subscriber. Never waits."""
        for symbol, cents in self._cents.items():
            self._cents[symbol] = max(1, cents + self._random.randint(-50, 50))
        self.latest = Prices(self.latest.tick + 1, self._quote())
        for subscription in tuple(self._subscriptions):
            subscription._offer(self.latest)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return self.latest

    async def changed(self) -> Prices:
        """Wait for the next :meth:`step` and return its prices."""
        await self._changed.wait()
        return self.latest

    async def run(self, interval: float) -> None:
        """Step every ``interval`` seconds until cancelled (the producer of a real app)."""
        while True:
            await asyncio.sleep(interval)
            self.step()

    def subscribe(self, window: int = 1) -> Subscription:
        """A subscriber, starting from the latest prices; use it in a ``with`` block."""
        return Subscription(self, window)

    def __len__(self) -> int:
        return len(self._subscriptions)


class Subscription:
    """One subscriber of a :class:`PriceFeed`: the newest prices it has not been sent, and nothing older
    (conflation). :meth:`next` hands out at most ``window`` prices before an :meth:`ack`."""

    def __init__(self, feed: PriceFeed, window: int = 1) -> None:
        self.feed = feed
        self.window = window
        self.symbols: set[str] = set(feed.symbols)  # what the client wants to see
        self.skipped = 0  # prices replaced by newer ones before they could be sent
        self._latest = feed.latest
        self._sent = -1  # the tick last handed out
        self._credit = window
        self._wake = asyncio.Event()

    def __enter__(self) -> Subscription:
        self.feed._subscriptions[self] = None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.feed._subscriptions.pop(self, None)

    def _offer(self, prices: Prices) -> None:
        if self._latest.tick != self._sent:
            self.skipped += 1
        self._latest = prices
        self._wake.set()

    def ack(self) -> None:
        """The client has read the prices it was sent: it may be sent the next ones."""
        self._credit = min(self._credit + 1, self.window)
        self._wake.set()

    async def next(self) -> Prices:
        """The latest prices, once there are prices newer than the last handed out and the window
        allows it."""
        while self._credit == 0 or self._latest.tick == self._sent:
            self._wake.clear()
            await self._wake.wait()
        self._credit -= 1
        self._sent = self._latest.tick
        return self._latest


class Inbox(asyncio.Queue[Frame]):
    """The notifications waiting to be sent on one connection, oldest first, at most ``maxsize``."""

    def __init__(self, hub: LiveNotifications, user: str, maxsize: int = MAX_PENDING) -> None:
        super().__init__(maxsize)
        self.hub, self.user = hub, user
        self.overflowed = False  # a notification did not fit: the client is too slow
        self._overflow = asyncio.Event()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.hub._unsubscribe(self)

    def put_frame(self, frame: Frame) -> bool:
        """Queue ``frame`` without waiting; False, and the inbox has overflowed, if it is full."""
        try:
            self.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            self._overflow.set()
            return False
        return True

    async def wait_overflow(self) -> None:
        """Return once a notification did not fit: the moment the publisher finds out, even while the
        connection's writer is stuck sending to a client that stopped reading."""
        await self._overflow.wait()


class LiveNotifications:
    """Notifications for users: numbered per user (``seq`` 1, 2, ...) and queued for each connection the
    user has open, in order; nothing is kept for a user who is not connected (see :class:`Notifications`).
    Use it from the server's event loop only::

        hub = LiveNotifications()
        with hub.subscribe("ada") as inbox:               # what the endpoint does for a connection
            hub.publish("ada", {"text": "your order shipped"})
            await inbox.get()    # {"type": "notification", "seq": 1, "text": "your order shipped"}
    """

    def __init__(self, *, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._inboxes: dict[str, list[Inbox]] = {}
        self._seq: defaultdict[str, int] = defaultdict(int)

    def publish(self, user: str, notification: Mapping[str, Any]) -> Frame:
        """Number ``notification`` and queue it for every open connection of ``user``; return the frame.
        Never waits. (The keys ``type`` and ``seq`` are the hub's.)"""
        self._seq[user] += 1
        fields = {key: value for key, value in notification.items() if key not in ("type", "seq")}
        frame = {"type": "notification", "seq": self._seq[user], **fields}
        for inbox in tuple(self._inboxes.get(user, ())):
            inbox.put_frame(frame)
        return frame

    def subscribe(self, user: str, since: int | None = None) -> Inbox:
        """A new inbox for one connection of ``user``, receiving from now on; use it in a ``with`` block.
        ``since``, the last ``seq`` the client saw, is ignored: this hub keeps no history."""
        inbox = Inbox(self, user, self.max_pending)
        self._inboxes.setdefault(user, []).append(inbox)
        return inbox

    def _unsubscribe(self, inbox: Inbox) -> None:
        inboxes = self._inboxes.get(inbox.user, [])
        if inbox in inboxes:
            inboxes.remove(inbox)
        if not inboxes:
            self._inboxes.pop(inbox.user, None)

    def online(self, user: str) -> int:
        """How many connections ``user`` has open."""
        return len(self._inboxes.get(user, ()))


class Notifications(LiveNotifications):
    """:class:`LiveNotifications` that keeps each user's last ``keep`` notifications (``KEEP``, or
    ``max_pending`` if that is smaller), so that a connection can start with the ones its client missed::

        hub = Notifications()
        hub.publish("ada", {"text": "your order shipped"})     # seq 1, while ada is away
        with hub.subscribe("ada", since=0) as inbox:           # she comes back: she had seen nothing
            await inbox.get()    # {"type": "notification", "seq": 1, "text": "your order shipped"}

    A client that missed more than ``keep`` gets the last ``keep`` (the ``seq`` numbers show the gap). The
    numbers and the history live in this process's memory: they start again at 1 when it restarts.
    """

    def __init__(self, *, max_pending: int = MAX_PENDING, keep: int | None = None) -> None:
        super().__init__(max_pending=max_pending)
        keep = min(KEEP, max_pending) if keep is None else keep
        if not 0 <= keep <= max_pending:
            raise ValueError(f"keep={keep}: a replay must fit in one inbox, so keep 0 to max_pending="
                             f"{max_pending} notifications per user")
        self.keep = keep
        self._history: defaultdict[str, deque[Frame]] = defaultdict(lambda: deque(maxlen=self.keep))

    def publish(self, user: str, notification: Mapping[str, Any]) -> Frame:
        """Number, keep and queue ``notification`` for ``user`` (see :meth:`LiveNotifications.publish`)."""
        frame = super().publish(user, notification)
        self._history[user].append(frame)
        return frame

    def subscribe(self, user: str, since: int | None = None) -> Inbox:
        """A new inbox for one connection of ``user``. With ``since`` (the last ``seq`` its client saw; 0:
        none), it first holds the kept notifications numbered above ``since``, oldest first, then the live
        ones: nothing can be published in between, as neither step waits. Without, live ones only."""
        inbox = super().subscribe(user, since)
        if since is not None:
            for frame in self._history.get(user, ()):
                if frame["seq"] > since:
                    inbox.put_frame(frame)
        return inbox

    def history(self, user: str) -> list[Frame]:
        """The notifications kept for ``user``, oldest first."""
        return list(self._history.get(user, ()))

