"""Wiring: the stalled-partition watchdog (stream/offsets.py StallWatch) on the Faust consumer.

Every few seconds it reads, for each assigned partition of the agents' source topics, the
position (next offset the worker will read), the high watermark, whether a record of it is
being processed (unacknowledged), and whether the record at the committed offset is in processing
or acknowledged, and acts on what StallWatch says: a warning naming the topic and
partition, `convmon_partition_stalled_total{topic,partition}` and the `convmon_partitions_stalled`
gauge, a seek back to the committed offset, then a rejoin of the consumer group (backed off and budgeted,
`convmon_group_rejoins_total`); a stall that outlives a rejoin (or finds this hour's rejoins spent) raises a
`consumer_stalled` alert on chat.alerts, resolved when the partition moves again.

These are the only places the watchdog touches Faust's and aiokafka's internals; each is named.
"""

from __future__ import annotations

import logging
import time

import faust

from .. import wire
from ..alerting.stalled import stalled_alert
from .offsets import PartitionView, StallWatch

log = logging.getLogger(__name__)

# What the watchdog logs (the chaos run, convmon_dev/chaos.py, counts these lines: keep them in step).
STALL_LOG = ("partition %s stalled: position %d of %d, committed offset %s, no progress for %.0fs with the next owed "
             "record not in processing; reading it again from the committed offset")
REJOIN_LOG = ("partition %s still stalled at %d of %d after a re-read; rejoining the consumer group (%d rejoins in "
              "the last hour, at most %d)")
ESCALATE_LOG = ("partition %s stalled at %d of %d for %.0fs: neither a re-read nor a rejoin moved it (or this hour's "
                "rejoins are spent); raising a consumer_stalled alert (restart the worker that owns it)")


def _partitions(app: faust.App, topics: set[str]) -> dict:
    """tp → PartitionView for the assigned partitions of `topics`."""
    consumer = app.consumer
    read = consumer._read_offset  # Faust: last offset handed to a stream, per partition
    committed = consumer._committed_offset  # Faust: last committed offset (the next one to read)
    acked = consumer._acked_index  # Faust: acknowledged offsets not yet committed, per partition
    # stream/consumer.py: offsets whose commit failed (broker away): processed, only the commit is owed
    failed = getattr(consumer, "_failed_commit", {})
    in_processing: dict = {}
    for m in list(consumer._unacked_messages):  # Faust: records handed to streams, not yet acknowledged
        if not m.acked:
            in_processing.setdefault(m.tp, set()).add(m.offset)
    out = {}
    for tp in consumer.assignment():
        if tp.topic not in topics:
            continue
        high = consumer.highwater(tp)
        c = committed.get(tp)
        pos = read[tp] + 1 if read.get(tp) is not None else c
        if high is None or pos is None:
            continue
        busy = in_processing.get(tp, set())
        done = c is None or c in busy or c in acked.get(tp, ()) or (failed.get(tp) or -1) > c
        out[tp] = PartitionView(pos, high, bool(busy), c, done)
    return out


def _commit_in_flight(app: faust.App):
    """Faust: the future of the commit in flight (`consumer._commit_fut`), None between commits; a commit waits
    as long as the broker is unreachable."""
    return getattr(app.consumer, "_commit_fut", None)


async def _rejoin(app: faust.App) -> None:
    """Ask the group coordinator for a rebalance (aiokafka, on Faust's consumer thread)."""
    thread = app.consumer._thread
    await thread.call_thread(thread._ensure_consumer()._coordinator.request_rejoin)


def register(app: faust.App) -> None:
    rt = app.convmon.runtime
    cfg = rt.settings.worker
    watch = StallWatch(cfg.stall_after_s)
    topics = {t.get_topic_name() for t in (app.convmon.topics.turns, app.convmon.topics.alerts, app.convmon.topics.signals)}  # the ones consumed
    episodes: dict = {}  # tp → when its escalated stall began (names the episode's alerts)
    last_commit: list = [None]  # the commit in flight at the previous tick

    async def alert(a, status: str) -> None:
        committed = app.consumer._committed_offset.get(a.tp)
        first_seen = episodes.setdefault(a.tp, time.time())
        out = stalled_alert(cfg.app_id, a.tp.topic, a.tp.partition, a.position, a.highwater, committed,
                            a.stalled_s, first_seen, status)
        if status == "resolved":
            episodes.pop(a.tp, None)
        key, value = wire.encode_alert(out)
        try:
            await app.convmon.topics.alerts.send(key=key, value=value)
        except Exception as e:  # noqa: BLE001 - the broker is away: the log line below still says it
            log.error("could not send the consumer_stalled alert for %s/%s (%s)", a.tp.topic, a.tp.partition,
                      type(e).__name__)

    @app.timer(min(5.0, cfg.stall_after_s / 4))
    async def watch_partitions():
        commit = _commit_in_flight(app)
        hanging = commit is not None and commit is last_commit[0]  # the same commit as one tick ago: waiting
        last_commit[0] = commit
        # Faust's `app.rebalancing` is set from a revocation to the end of recovery
        if watch.skip(bool(app.rebalancing) or hanging, time.monotonic()):
            return
        try:
            parts = _partitions(app, topics)
        except Exception:  # noqa: BLE001 - not started yet / rebalancing: look again next tick
            return
        for a in watch.check(parts, time.monotonic()):
            where = f"{a.tp.topic}/{a.tp.partition}"
            if a.kind == "recovered":
                log.info("partition %s moves again (position %d of %d)", where, a.position, a.highwater)
                if a.escalated:
                    await alert(a, "resolved")
                continue
            if a.kind == "released":
                log.info("partition %s was stalled and now belongs to another worker", where)
                await alert(a, "resolved")
                continue
            if a.kind == "escalate":
                log.error(ESCALATE_LOG, where, a.position, a.highwater, a.stalled_s)
                await alert(a, "firing")
                continue
            if a.kind == "seek":
                rt.metrics.partition_stalls.labels(a.tp.topic, str(a.tp.partition)).inc()
                committed = app.consumer._committed_offset.get(a.tp)
                log.warning(STALL_LOG, where, a.position, a.highwater, committed, a.stalled_s)
                if committed is not None:
                    await app.consumer.seek(a.tp, committed)
            else:
                rt.metrics.group_rejoins.inc()
                log.warning(REJOIN_LOG, where, a.position, a.highwater, len(watch.rejoins), watch.max_rejoins_per_hour)
                try:
                    await _rejoin(app)
                except Exception as e:  # noqa: BLE001
                    log.error("partition %s: could not rejoin the consumer group (%s); restart the worker",
                              where, type(e).__name__)
        rt.metrics.partitions_stalled.set(len(watch.stalled))
