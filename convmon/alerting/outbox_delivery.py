"""OutboxDelivery: the channels' outbox topics → the channels, committing a record only once delivered.

It reads every channel's outbox topic (outbox.py) with its own Kafka consumer group and commits
offsets itself, instead of going through a Faust agent: a page can wait for hours while its channel
is down, and a Faust agent holding an unfinished record blocks the worker's every rebalance and its
shutdown (Faust waits for all records in flight), so scoring would stop along with the channel.

- Each record goes to its channel's Dispatcher (delivery.py), which retries while retrying can help.
- A partition's committed offset moves past a record only once the channel has accepted it, or
  refused it for good (HTTP 400 …, logged and counted), or it was unreadable (logged and counted).
  A channel's queue is first in, first out, so a partition's records finish in offset order.
- While a channel's queue is full (`alerting.max_pending`), its partitions are paused: the rest wait
  in Kafka, and the other channels' topics are still read.
- When Kafka moves a partition to another worker, its undelivered records are withdrawn from the
  queues (the new owner delivers them from the committed offset) and what was delivered is committed.
- On stop, the queues get `drain_timeout_s` to finish; what is left stays uncommitted and is
  delivered after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Optional

from aiokafka.abc import ConsumerRebalanceListener

from .delivery import Dispatcher
from .hops import AlertHops
from .outbox import BadRecord, decode

log = logging.getLogger(__name__)


class Positions:
    """Per partition: the offset to commit (one past the last finished record) and whether it moved.
    A generation per partition makes a late completion of a revoked partition's record harmless."""

    def __init__(self) -> None:
        self.done: dict[Any, int] = {}
        self.committed: dict[Any, int] = {}
        self.generation: dict[Any, int] = {}

    def finished(self, tp, offset: int, generation: int) -> None:
        if self.generation.get(tp, 0) == generation:
            self.done[tp] = max(self.done.get(tp, -1), offset + 1)

    def due(self) -> dict[Any, int]:
        """Partitions whose commit position moved since the last commit()."""
        return {tp: o for tp, o in self.done.items() if self.committed.get(tp) != o}

    def commit(self, offsets: dict[Any, int]) -> None:
        self.committed.update(offsets)

    def revoke(self, tps) -> None:
        for tp in tps:
            self.generation[tp] = self.generation.get(tp, 0) + 1
            self.done.pop(tp, None)
            self.committed.pop(tp, None)


class OutboxDelivery:
    def __init__(self, consumer_factory: Callable[..., Any], topics: dict[str, str], dispatchers: dict[str, Dispatcher],
                 *, on_unreadable: Callable[[str], None] = lambda channel: None, commit_interval_s: float = 0.5,
                 hops: Optional[AlertHops] = None):
        """`topics`: channel name → its outbox topic; `consumer_factory(listener)` returns an unstarted
        aiokafka consumer subscribed to those topics with that rebalance listener, auto-commit off. `hops`
        observes each page's `outbox_topic` and `deliver` hops (hops.py)."""
        self.topics, self.dispatchers = topics, dispatchers
        self.channel_of = {t: c for c, t in topics.items()}
        self.positions = Positions()
        self.on_unreadable = on_unreadable
        self.commit_interval_s = commit_interval_s
        self.hops = hops
        self.consumer = consumer_factory(_Listener(self))
        self.paused: set = set()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        """Read, hand over and commit until stop()."""
        from aiokafka.errors import KafkaError

        for d in self.dispatchers.values():
            d.start()
        await self.consumer.start()
        try:
            while not self._stopping.is_set():
                self._resume_channels_with_room()
                try:
                    batches = await self.consumer.getmany(timeout_ms=int(self.commit_interval_s * 1000), max_records=500)
                except KafkaError as e:
                    log.warning("outbox: fetch failed (%s); retrying", type(e).__name__)
                    await asyncio.sleep(1)
                    continue
                taken = time.time()
                for tp, records in batches.items():
                    self._hand_over(tp, records, taken)
                await self._commit()
        finally:
            self._stopped.set()

    def _hand_over(self, tp, records, taken: float) -> None:
        channel = self.channel_of[tp.topic]
        d = self.dispatchers[channel]
        generation = self.positions.generation.get(tp, 0)
        for r in records:
            try:
                n = decode(r.value)
            except BadRecord as e:
                self.on_unreadable(channel)
                log.error("alert channel %s: skipping outbox record %s/%d@%d: %s", channel, tp.topic, tp.partition,
                          r.offset, e)
                self.positions.finished(tp, r.offset, generation)
                continue
            hop = (self.hops.taken_from_outbox(getattr(r, "timestamp", None), taken)
                   if self.hops is not None and n.status == "firing" else None)
            d.submit(n, tag=tp, on_done=lambda _c, outcome, tp=tp, off=r.offset, g=generation, hop=hop:
                     self._finished(tp, off, g, outcome, hop))
        if not d.has_room():  # the rest waits in Kafka until the channel takes some
            tps = {p for p in self.consumer.assignment() if self.channel_of.get(p.topic) == channel} - self.paused
            if tps:
                self.consumer.pause(*tps)
                self.paused |= tps

    def _finished(self, tp, offset: int, generation: int, outcome: str, hop) -> None:
        self.positions.finished(tp, offset, generation)
        if hop is not None:
            hop(outcome)

    def _resume_channels_with_room(self) -> None:
        ready = {tp for tp in self.paused if self.dispatchers[self.channel_of[tp.topic]].has_room()}
        if ready:
            self.consumer.resume(*ready)
            self.paused -= ready

    async def _commit(self, only: Optional[set] = None) -> None:
        from aiokafka.errors import KafkaError
        from aiokafka.structs import OffsetAndMetadata

        due = {tp: o for tp, o in self.positions.due().items() if only is None or tp in only}
        if not due:
            return
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in due.items()})
            self.positions.commit(due)
        except KafkaError as e:  # kept due: committed with the next one, or re-delivered (at least once)
            log.warning("outbox: commit failed (%s); will retry", type(e).__name__)

    async def on_revoked(self, revoked) -> None:
        mine = set(revoked)
        await self._commit(only=mine)
        withdrawn = 0
        for d in self.dispatchers.values():
            withdrawn += await d.discard(lambda tag: tag in mine)
        self.positions.revoke(mine)
        self.paused -= mine
        if withdrawn:
            log.info("outbox: %d undelivered notification(s) of moved partitions left to their new owner", withdrawn)

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Give the queues `drain_timeout_s`, commit what was delivered, stop. The rest waits in Kafka."""
        for d in self.dispatchers.values():
            await d.drain(drain_timeout_s / max(1, len(self.dispatchers)))
        self._stopping.set()
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=self.commit_interval_s * 4 + 5)
        except asyncio.TimeoutError:
            pass
        for d in self.dispatchers.values():
            await d.stop()
        await self._commit()
        await self.consumer.stop()


class _Listener(ConsumerRebalanceListener):
    """Hands partition moves to the OutboxDelivery."""

    def __init__(self, owner: OutboxDelivery):
        self.owner = owner

    async def on_partitions_revoked(self, revoked) -> None:
        await self.owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        return None
