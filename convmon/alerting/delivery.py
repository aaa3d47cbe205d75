"""Dispatcher: delivers notifications to every channel, independently, with retries.

* `submit(n)` is synchronous and never blocks or raises: it appends `n` to each channel's queue.
* One worker task per channel delivers its queue in order. A retryable `DeliveryError` (or a
  timeout) keeps the notification at the head of the queue and retries it for ever with
  exponential back-off: `min(cap, base * 2**(attempt-1))`, minus up to `jitter` of it at random,
  and never less than a server's Retry-After. A non-retryable error (HTTP 400 …) or an unexpected
  exception is logged, counted in `failed` and the notification is dropped.
* A channel that is down only grows its own queue; other channels are unaffected.
* Bounded queues (`queue_size` per channel). Overflow policy, applied by `submit` when a queue is
  full: first, queued notifications superseded by a newer one with the same dedup_key are removed
  (the newer one holds the current state of the incident) and the new notification replaces a
  queued one with its key; if the queue is still full, the oldest queued notification is dropped.
  The notification being delivered is never dropped. Every removal is counted in `dropped`.
* Logs and `stats()` name the channel only: never URLs, routing keys or secrets (channels redact
  their errors; URLs left in an error text are masked here as well).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional

from convmon.alerting.model import Channel, DeliveryError, Notification

log = logging.getLogger(__name__)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def scrub(text: str, limit: int = 500) -> str:
    """Mask anything that looks like a URL (defence in depth; channels already redact)."""
    return _URL.sub("<url>", text)[:limit]


@dataclass
class ChannelStats:
    delivered: int = 0
    failed_attempts: int = 0  # every attempt that raised, retried or not
    failed: int = 0  # notifications given up on (non-retryable error)
    dropped: int = 0  # notifications removed by the overflow policy
    pending: int = 0  # queued + in flight
    last_error: Optional[str] = None


class _ChannelQueue:
    """The queue and worker state of one channel."""

    def __init__(self, channel: Channel, maxsize: int):
        self.channel = channel
        self.maxsize = maxsize
        self.items: deque[Notification] = deque()
        self.inflight: Optional[Notification] = None
        self.stats = ChannelStats()
        self.nonempty = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: Optional[asyncio.Task[None]] = None

    def put(self, n: Notification) -> None:
        if len(self.items) >= self.maxsize:
            self._make_room(n)
        else:
            self.items.append(n)
        self.nonempty.set()
        self.idle.clear()

    def _make_room(self, n: Notification) -> None:
        before = len(self.items)
        newest: dict[str, Notification] = {}
        for m in self.items:
            newest[m.dedup_key] = m
        kept = deque(m for m in self.items if newest[m.dedup_key] is m)
        for i, m in enumerate(kept):
            if m.dedup_key == n.dedup_key:
                kept[i] = n  # the new one takes the superseded one's place in line
                break
        else:
            if len(kept) >= self.maxsize:
                kept.popleft()
            kept.append(n)
        dropped = before + 1 - len(kept)
        self.items = kept
        self.stats.dropped += dropped
        if self.stats.dropped == dropped or self.stats.dropped % 100 < dropped:
            log.warning("alert channel %s: queue full (%d), dropped %d superseded/oldest notification(s), "
                        "%d dropped so far", self.channel.name, self.maxsize, dropped, self.stats.dropped)

    async def get(self) -> Notification:
        while not self.items:
            self.nonempty.clear()
            await self.nonempty.wait()
        self.inflight = self.items.popleft()
        return self.inflight

    def done(self) -> None:
        self.inflight = None
        if not self.items:
            self.idle.set()

    def snapshot(self) -> dict[str, Any]:
        self.stats.pending = len(self.items) + (self.inflight is not None)
        return asdict(self.stats)


class Dispatcher:
    """Fans notifications out to channels; see the module docstring for the guarantees."""

    def __init__(self, channels: Iterable[Channel], *, queue_size: int = 1000, backoff_base_s: float = 0.5,
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
    def submit(self, notification: Notification) -> None:
        """Queue for every channel; returns at once (may be called before start())."""
        for q in self._queues.values():
            q.put(notification)

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
                log.warning("alert channel %s: stopped with %d undelivered notification(s)",
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
            n = await q.get()
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
                        log.error("alert channel %s: dropping %s notification %s (not retryable): %s",
                                  name, n.status, n.dedup_key, msg)
                        break
                    delay = self.backoff_delay(attempt, getattr(e, "retry_after", None))
                    log.warning("alert channel %s: attempt %d for %s failed: %s; retrying in %.2fs",
                                name, attempt, n.dedup_key, msg, delay)
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - a bug in a channel must not kill the worker
                    q.stats.failed_attempts += 1
                    q.stats.failed += 1
                    q.stats.last_error = scrub(f"{type(e).__name__}: {e}")
                    log.error("alert channel %s: dropping notification %s after an unexpected error: %s",
                              name, n.dedup_key, q.stats.last_error)
                    break
                else:
                    q.stats.delivered += 1
                    break
            q.done()
