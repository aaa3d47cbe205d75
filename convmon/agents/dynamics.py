"""Agent: chat.scores → per-conversation dynamics (state/dynamics.py ConversationTracker) → chat.alerts.

chat.scores is keyed by conversation_id, so a conversation's turns arrive in order on one
partition and its state lives in the changelog-backed table `conversations` (a restarted
worker resumes it). State expires after `dynamics.ttl_s` of inactivity, keeping memory bounded.
"""

from __future__ import annotations

import json
import time

import faust

from .. import wire
from ..state.dynamics import ConversationTracker, ShiftConfig, ShiftDetector
from ..stream.rereads import Rereader
from ..stream.topics import CONVERSATIONS_TABLE


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    settings = rt.settings
    tracker = ConversationTracker(ShiftDetector(ShiftConfig.from_dict(settings.dynamics.detector)), rt.rules,
                                  settings.dynamics.ttl_s)
    conversations = app.Table(CONVERSATIONS_TABLE, partitions=settings.topics.partitions, key_type=str)

    # Expiry: a table key may only change while processing an event of its own partition
    # (the changelog record goes to the current event's partition). The timer marks a sweep
    # due; each partition sweeps its own stale conversations on its next event.
    sweep_due: set[int] = set()

    @app.agent(app.scores_topic, name="convmon.dynamics", concurrency=1)
    async def track_conversations(stream):
        rereader = Rereader(app, rt.metrics)
        async for event in stream.events():
            await rereader.check((event,))
            partition = event.message.partition
            if partition in sweep_due:
                sweep_due.discard(partition)
                for cid in tracker.stale(list(conversations.items()), partition, time.time()):
                    del conversations[cid]
            s = json.loads(event.value)
            if s.get("sentiment") is None or s.get("toxicity") is None:
                yield None  # model suite disabled: nothing to track
                continue
            cid = s["conversation_id"]
            value, alert, shift = tracker.update(conversations.get(cid), s, partition)
            if value is not None:
                conversations[cid] = value
            if alert is not None:
                key, value = wire.encode_alert(alert)
                await app.alerts_topic.send(key=key, value=value)
            yield shift.turn_index if shift else None  # one result per event (agent.test_context waits for it)

    @app.timer(settings.dynamics.expire_check_s)
    async def schedule_expiry():
        sweep_due.update(tp.partition for tp in app.consumer.assignment() if tp.topic == app.scores_topic.get_topic_name())

    app.track_conversations = track_conversations
    app.conversations = conversations
