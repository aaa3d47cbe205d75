"""Agent: chat.scores → per-conversation dynamics → `sentiment_shift` alert candidates on chat.alerts.

chat.scores is keyed by conversation_id, so a conversation's turns arrive in order on one
partition and its state lives in the changelog-backed table `conversations` (a restarted
worker resumes it). State expires after `dynamics.ttl_s` of inactivity (timer), keeping
memory bounded. The detector itself is plain code: convmon/state/dynamics.py.
"""

from __future__ import annotations

import json
import time

import faust

from ..state.dynamics import ConversationState, ShiftConfig, ShiftDetector, expired
from .alerts import alert_to_json
from .rereads import Rereader
from .topics import CONVERSATIONS_TABLE


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    settings = rt.settings
    detector = ShiftDetector(ShiftConfig.from_dict(settings.dynamics.detector))
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
                now = time.time()
                for cid, raw in list(conversations.items()):
                    if raw and raw.get("_partition") == partition and expired(
                        ConversationState.from_dict(raw), now, settings.dynamics.ttl_s
                    ):
                        del conversations[cid]
            s = json.loads(event.value)
            if s.get("sentiment") is None or s.get("toxicity") is None:
                yield None  # model suite disabled: nothing to track
                continue
            cid = s["conversation_id"]
            raw = conversations.get(cid)
            state = ConversationState.from_dict(raw) if raw else None
            new_state, shift = detector.update(state, s)
            value = {**new_state.to_dict(), "_partition": partition}
            if value != raw:
                conversations[cid] = value
            if shift is None:
                yield None  # one result per event (agent.test_context waits for it)
                continue
            ctx = {"app": s["app"], "model_name": s["model"]["name"], "model_version": s["model"]["version"],
                   "role": shift.role, "conversation_id": cid, "turn_index": shift.turn_index}
            summary = (f"conversation {cid} turned sharply negative at turn {shift.turn_index} ({shift.role}): "
                       f"level {shift.before:+.2f} → {shift.after:+.2f} ({shift.reason})")
            alert = rt.rules.make_alert("sentiment_shift", ctx, summary, shift.to_dict(),
                                        source_id=f"{cid}:{shift.turn_index}")
            if alert is not None:
                await app.alerts_topic.send(key=alert.dedup_key.encode(), value=alert_to_json(alert))
            yield shift.turn_index

    @app.timer(settings.dynamics.expire_check_s)
    async def schedule_expiry():
        sweep_due.update(tp.partition for tp in app.consumer.assignment() if tp.topic == app.scores_topic.get_topic_name())

    app.track_conversations = track_conversations
    app.conversations = conversations
