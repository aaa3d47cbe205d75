"""Dispatcher: delivers notifications to every channel, independently, with retries.

* `submit(n, on_done)` is synchronous and never blocks, raises or drops: it appends `n` to each
  channel's queue. `on_done(channel, outcome)` is called once per channel when the notification
  leaves it: "delivered", or "failed" (not retryable). The durable outbox (agents/delivery.py)
  acknowledges the notification's Kafka record there, so a record is committed only once its
  channel has accepted it, and an undelivered one is read again after a restart.
* Queues are bounded by the caller, not by dropping: `await wait_for_room()` returns once every
  queue holds fewer than `queue_size` notifications (the outbox keeps the rest in Kafka).
* One worker task per channel delivers its queue in order. A retryable `DeliveryError` (or a
  timeout) keeps the notification at the head of the queue and retries it for ever with
  exponential back-off: `min(cap, base * 2**(attempt-1))`, minus up to `jitter` of it at random,
  and never less than a server's Retry-After. A non-retryable error (HTTP 400 …) or an unexpected
  exception is logged, counted in `failed` and the notification is given up.
* A channel that is down only grows its own queue; other channels are unaffected. `stats()` gives
  each channel's backlog: `pending` (queued + in flight) and `oldest_s` (age of the oldest).
* Logs and `stats()` name the channel only: never URLs, routing keys or secrets (channels redact
  their errors; URLs left in an error text are masked here as well).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable, Iterable, Optional

from convmon.alerting.model import Channel, DeliveryError, Notification

log = logging.getLogger(__name__)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def scrub(text: str, limit: int = 500) -> str:
    """Mask anything that looks like a URL (defence in depth; channels already redact)."""
    return _URL.sub("<url>", text)[:limit]


OnDone = Callable[[str, str], Optional[Awaitable[None]]]  # (channel name, "delivered" | "failed")


@dataclass
class ChannelStats:
    delivered: int = 0
    failed_attempts: int = 0  # every attempt that raised, retried or not
    failed: int = 0  # notifications given up on (non-retryable error)
    pending: int = 0  # queued + in flight
    oldest_s: float = 0.0  # age of the oldest pending notification (0 when none)
    last_error: Optional[str] = None


@dataclass
class _Item:
    notification: Notification
    on_done: Optional[OnDone]
    since: float  # time.monotonic() when submitted
    tag: Any = None  # the caller's (the outbox: the record's topic partition), for discard()


class _ChannelQueue:
    """The queue and worker state of one channel."""

    def __init__(self, channel: Channel, maxsize: int):
        self.channel = channel
        self.maxsize = maxsize
        self.items: deque[_Item] = deque()
        self.inflight: Optional[_Item] = None
        self.stats = ChannelStats()
        self.nonempty = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.room = asyncio.Event()
        self.room.set()
        self.task: Optional[asyncio.Task[None]] = None

    def pending(self) -> int:
        return len(self.items) + (self.inflight is not None)

    def put(self, item: _Item) -> None:
        self.items.append(item)
        self.nonempty.set()
        self.idle.clear()
        if self.pending() >= self.maxsize:
            self.room.clear()

    async def get(self) -> _Item:
        while not self.items:
            self.nonempty.clear()
            await self.nonempty.wait()
        self.inflight = self.items.popleft()
        return self.inflight

    def done(self) -> None:
        self.inflight = None
        self.refresh()

    def refresh(self) -> None:
        if self.pending() < self.maxsize:
            self.room.set()
        if not self.items and self.inflight is None:
            self.idle.set()

    def snapshot(self) -> dict[str, Any]:
        self.stats.pending = self.pending()
        first = self.inflight or (self.items[0] if self.items else None)
        self.stats.oldest_s = round(time.monotonic() - first.since, 3) if first else 0.0
        return asdict(self.stats)


class Dispatcher:
    """Fans notifications out to channels; see the module docstring for the guarantees."""

    def __init__(self, channels: Iterable[Channel], *, queue_size: int = 10_000, backoff_base_s: float = 0.5,
                 backoff_cap_s: float = 60.0, jitter: float = 0.2, attempt_timeout_s: float = 60.0,
                 rng: Optional[random.Random] = None):
        if queue_size < 1 or backoff_base_s <= 0 or backoff_cap_s < backoff_base_s or not 0 <= jitter <= 1:
            raise ValueError("need queue_size >= 1, 0 < backoff_base_s <= backoff_cap_s, 0 <= jitter <= 1")
        self.backoff_base_s, self.backoff_cap_s, self.jitter = backoff_base_s, backoff_cap_s, jitter
        self.attempt_timeout_s = attempt_timeout_s
        self._rng = rng or random.Random()
        self._queues: dict[str, _ChannelQueue] = {}
        for ch in channels:
            if ch.name in self._queues:
                raise ValueError(f"channel name {ch.name!r} is used twice")
            self._queues[ch.name] = _ChannelQueue(ch, queue_size)

    # -- producer side ------------------------------------------------------------------
    def submit(self, notification: Notification, on_done: Optional[OnDone] = None, tag: Any = None) -> None:
        """Queue for every channel; returns at once (may be called before start()). Never drops."""
        now = time.monotonic()
        for q in self._queues.values():
            q.put(_Item(notification, on_done, now, tag))

    def has_room(self) -> bool:
        return all(q.room.is_set() for q in self._queues.values())

    async def discard(self, tagged: Callable[[Any], bool]) -> int:
        """Withdraw the notifications whose tag matches, queued or in flight (an attempt in progress is
        cancelled), without calling their on_done; returns how many. The outbox uses it when Kafka moves
        a partition to another worker, which will deliver them instead."""
        n = 0
        for q in self._queues.values():
            restart = q.task is not None and not q.task.done()
            if q.inflight is not None and tagged(q.inflight.tag) and restart:
                q.task.cancel()
                await asyncio.gather(q.task, return_exceptions=True)
                q.inflight, q.task = None, None
                n += 1
            else:
                restart = False
            kept = deque(i for i in q.items if not tagged(i.tag))
            n += len(q.items) - len(kept)
            q.items = kept
            q.refresh()
            if restart:
                q.task = asyncio.get_running_loop().create_task(self._worker(q), name=f"alerts:{q.channel.name}")
        return n

    async def wait_for_room(self) -> None:
        """Return once every channel's queue holds fewer than `queue_size` notifications."""
        for q in self._queues.values():
            await q.room.wait()

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: q.snapshot() for name, q in self._queues.items()}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start one worker per channel (inside the running event loop)."""
        for q in self._queues.values():
            if q.task is None or q.task.done():
                q.task = asyncio.get_running_loop().create_task(self._worker(q), name=f"alerts:{q.channel.name}")

    async def drain(self, timeout: float) -> bool:
        """Wait until every queue is empty and nothing is in flight; False if `timeout` ran out."""
        try:
            async with asyncio.timeout(timeout):
                for q in self._queues.values():
                    await q.idle.wait()
            return True
        except TimeoutError:
            return False

    async def stop(self, drain_timeout: float = 0.0) -> None:
        """Optionally drain, then cancel the workers and close the channels' HTTP sessions."""
        if drain_timeout > 0:
            await self.drain(drain_timeout)
        tasks = {q.task for q in self._queues.values() if q.task is not None}
        pending = set(tasks)
        while pending:  # cancel again should a task have swallowed a cancellation
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                log.error("alert channel worker %s died: %s", t.get_name(), scrub(repr(t.exception())))
        for q in self._queues.values():
            q.task = None
            if q.inflight is not None:  # interrupted: back to the head so a later start() retries it
                q.items.appendleft(q.inflight)
                q.inflight = None
            if q.items:
                log.warning("alert channel %s: stopped with %d undelivered notification(s); the outbox delivers "
                            "them after a restart",
                            q.channel.name, len(q.items))
            close = getattr(q.channel, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception as e:  # noqa: BLE001 - closing must not fail shutdown
                    log.warning("alert channel %s: close failed: %s", q.channel.name, scrub(type(e).__name__))

    # -- worker -------------------------------------------------------------------------
    def backoff_delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Delay before retry number `attempt` (1-based)."""
        delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** min(attempt - 1, 60))
        delay -= delay * self.jitter * self._rng.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, 3600.0))
        return delay

    async def _worker(self, q: _ChannelQueue) -> None:
        name = q.channel.name
        while True:
            item = await q.get()
            n = item.notification
            outcome = await self._deliver(q, n)
            if item.on_done is not None:
                try:
                    res = item.on_done(name, outcome)
                    if res is not None:
                        await res
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - the callback's failure must not kill the worker
                    log.error("alert channel %s: on_done failed: %s", name, scrub(f"{type(e).__name__}: {e}"))
            q.done()

    async def _deliver(self, q: _ChannelQueue, n: Notification) -> str:
        """Deliver `n`, retrying while retrying can help; "delivered" or "failed"."""
        name = q.channel.name
        attempt = 0
        while True:
            attempt += 1
            try:
                # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
                # that races with the inner call finishing, and stop() would never end.
                async with asyncio.timeout(self.attempt_timeout_s):
                    await q.channel.deliver(n)
            except (DeliveryError, TimeoutError) as e:
                retryable = getattr(e, "retryable", True)
                if isinstance(e, DeliveryError):
                    msg = scrub(str(e))
                else:
                    msg = f"timed out after {self.attempt_timeout_s:g}s"
                q.stats.failed_attempts += 1
                q.stats.last_error = msg
                if not retryable:
                    q.stats.failed += 1
                    log.error("alert channel %s: giving up %s notification %s (not retryable): %s",
                              name, n.status, n.dedup_key, msg)
                    return "failed"
                delay = self.backoff_delay(attempt, getattr(e, "retry_after", None))
                if attempt <= 3 or attempt % 10 == 0:  # a long outage logs a line per ~10 attempts, not per attempt
                    log.warning("alert channel %s: attempt %d for %s failed: %s; retrying in %.2fs (%d pending)",
                                name, attempt, n.dedup_key, msg, delay, q.pending())
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a bug in a channel must not kill the worker
                q.stats.failed_attempts += 1
                q.stats.failed += 1
                q.stats.last_error = scrub(f"{type(e).__name__}: {e}")
                log.error("alert channel %s: giving up notification %s after an unexpected error: %s",
                          name, n.dedup_key, q.stats.last_error)
                return "failed"
            else:
                q.stats.delivered += 1
                return "delivered"
