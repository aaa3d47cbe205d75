"""Agent: chat.turns → (DLQ | scores, signals, alert candidates + ClickHouse), and each conversation's dynamics.

The logic is in plain stages: convmon.batch (validate and score a micro-batch) and state/dynamics.py
ConversationTracker (abrupt shifts). chat.turns is keyed by conversation_id, so a conversation's turns
arrive in order on one partition, and its dynamics state lives here, in the changelog-backed table
`conversations` (a restarted worker resumes it; each change goes to the changelog partition of the turn
that made it). A valid turn without a key is sent back to chat.turns keyed by its conversation_id and
scored when it comes round. State expires after `dynamics.ttl_s` of inactivity.

Offsets: each event's message is pinned (incref) while its batch is in flight and
released only after the batch is stored and its messages are acknowledged by Kafka. If the
worker stops or dies mid-batch, the pin keeps Faust from committing past it, the records are
read again on restart, and ClickHouse deduplicates on event_id. Up to three batches are in flight: one
stored and published, one in the encoder, the next prepared beside it; they are tracked, stored and
published in the order they were read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import faust

from .. import wire
from ..alerting.hops import AlertHops, alert_origins, record_times
from ..batch import dlq_max_bytes
from ..state.dynamics import ConversationTracker, ShiftConfig, ShiftDetector
from ..stream.current import processing
from ..stream.runner import micro_batches, off_loop_timed, raw_records, send_all, store_all
from ..stream.topics import CONVERSATIONS_TABLE

log = logging.getLogger(__name__)

BATCHES_IN_FLIGHT = 3


def register(app: faust.App) -> None:
    rt = app.convmon.runtime
    cfg, settings = rt.settings.worker, rt.settings
    topics = {"dlq": app.convmon.topics.dlq, "turns": app.convmon.topics.turns, "scores": app.convmon.topics.scores,
              "signals": app.convmon.topics.signals, "alerts": app.convmon.topics.alerts}
    tracker = ConversationTracker(ShiftDetector(ShiftConfig.from_dict(settings.dynamics.detector)), rt.rules,
                                  settings.dynamics.ttl_s)
    conversations = app.Table(CONVERSATIONS_TABLE, partitions=settings.topics.partitions, key_type=str)
    # Expiry: a table key may only change in its own partition; the timer marks a sweep due, and each
    # partition sweeps its stale conversations in its next batch.
    sweep_due: set[int] = set()
    # A batch's conversation changes reach the table only after its alerts are in Kafka (finish): a worker
    # killed in between re-reads the turns and raises the same shift again (same alert_id) instead of losing
    # it. Until then the next batch reads them here.
    pending: dict[str, dict] = {}

    def track(events, result) -> tuple[list, list]:
        """Dynamics of the scored batch, on the loop (the table is the loop's): (shift alert candidates,
        table writes as (conversation, value, the event whose changelog partition takes it))."""
        at = {(ev.message.partition, ev.message.offset): ev for ev in events}
        for partition in sweep_due & {p for p, _ in at}:
            sweep_due.discard(partition)
            event = next(ev for (p, _), ev in at.items() if p == partition)
            with processing(event):
                for cid in tracker.stale(list(conversations.items()), partition, time.time()):
                    if cid not in pending:
                        del conversations[cid]
        changes, alerts = tracker.track(result.scored, lambda cid: pending.get(cid) or conversations.get(cid))
        pending.update((cid, value) for cid, (value, _) in changes.items())
        return alerts, [(cid, value, at[position]) for cid, (value, position) in changes.items()]

    @app.agent(app.convmon.topics.turns, name="convmon.score_turns", concurrency=1)
    async def score_turns(stream):
        await rt.sink.open()
        stage = rt.metrics.stage_seconds
        hops = AlertHops(rt.metrics.observe_hop)

        async def finish(events, result, tracked) -> None:
            """Store, publish, record the conversations' new state, then release the batch's offsets."""
            shifts, writes = tracked
            t1 = time.perf_counter()
            await store_all(rt.sink, result.rows())
            t2 = time.perf_counter()
            out = result.messages(rt.rules, rt.thresholds, rt.policy_thresholds, dlq_max_bytes(cfg.max_record_bytes))
            out["alerts"] += [(*wire.encode_alert(a), None) for a in shifts]
            origins = (alert_origins([v for _, v, _ in out["alerts"]], result.scored, record_times(events))
                       if out["alerts"] else [])
            await send_all((topics[role], *m) for role, ms in out.items() for m in ms)
            hops.scored(origins, time.time())  # turn in Kafka → its alert records acknowledged
            for cid, value, event in writes:
                with processing(event):  # the changelog record goes to the partition of the turn that made it
                    conversations[cid] = value
                if pending.get(cid) is value:
                    del pending[cid]
            stage.labels("clickhouse_insert").inc(t2 - t1)
            stage.labels("publish").inc(time.perf_counter() - t2)
            for ev in events:
                await stream.ack(ev)

        async def complete(events, scoring, tracked_before, tracked_now, finished_before) -> None:
            """One batch after its scoring: tracked, then stored and published, both in batch order."""
            try:
                result, seconds = await scoring
                rt.metrics.observe_batch(len(events), result, seconds)
                if result.dead:
                    log.warning("dead-lettered %d records to %s: %s", len(result.dead),
                                app.convmon.topics.dlq.get_topic_name(), dict(Counter(d.reason for d in result.dead)))
                if tracked_before is not None:
                    await tracked_before  # conversations see their turns in order
                tracked = track(events, result)
                tracked_now.set_result(None)
                if finished_before is not None:
                    await finished_before  # batches are stored and published in order
                await finish(events, result, tracked)
            except BaseException as e:
                if not tracked_now.done():
                    tracked_now.set_exception(e)
                    tracked_now.exception()  # retrieved: the batch's own task reports it
                raise
            finally:
                slots.release()

        # Batches in flight: one being stored and published, one waiting for the encoder's result, one being
        # prepared (decoded, PII-scanned) in the other scoring thread, so that the encoder's child process
        # never waits for the worker between two batches (agents/turns.py docstring, README "Performance").
        slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        tracked: asyncio.Future | None = None
        previous: asyncio.Future | None = None
        try:
            async for events in micro_batches(app, stream, cfg.batch_size, cfg.batch_within_s, rt.metrics):
                if previous is not None and previous.done() and not previous.cancelled() and previous.exception():
                    raise previous.exception()  # a batch could not be finished: stop, as with one batch in flight
                for ev in events:
                    ev.message.incref()  # pinned until finish() has stored and published the batch
                await slots.acquire()
                scoring = asyncio.ensure_future(off_loop_timed(rt.score_executor, rt.metrics, "validate_and_score",
                                                               rt.processor.process, raw_records(events)))
                tracked_now = asyncio.get_running_loop().create_future()
                previous = asyncio.ensure_future(complete(events, scoring, tracked, tracked_now, previous))
                tracked = tracked_now
                yield len(events)
        finally:
            if previous is not None and not previous.done():
                # Let the last batches finish on shutdown, within bounds: if they cannot (ClickHouse down), their
                # offsets stay uncommitted and they are read again on restart.
                try:
                    await asyncio.wait_for(asyncio.shield(previous), cfg.shutdown_timeout_s)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                    log.warning("stopping with batches not stored: they will be re-read on restart")

    @app.timer(settings.dynamics.expire_check_s)
    async def schedule_expiry():
        sweep_due.update(tp.partition for tp in app.consumer.assignment() if tp.topic == app.convmon.topics.turns.get_topic_name())

    app.convmon.agents["score_turns"] = score_turns
    app.convmon.tables["conversations"] = conversations
