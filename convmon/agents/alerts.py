"""Agent: chat.alerts → incidents (dedup/grouping) → ClickHouse `alerts` + the channels' outbox topics.

chat.alerts is keyed by dedup_key, so one incident's alerts meet in one partition and its
state lives in the changelog-backed table `incidents`: a restarted worker resumes it and a
re-processed alert (same alert_id) pages nobody twice. A decided notification is written to the
outbox topic of each channel it is routed to (alerting/outbox.py), and Kafka has it before the
incident state changes and before the alert's offset commits; agents/delivery.py delivers it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import faust

from ..alerting import outbox
from ..alerting.incidents import IncidentBook, IncidentIndex
from ..alerting.model import Alert
from ..store.alerts import AlertRecord
from .current import processing
from .rereads import Rereader
from .topics import INCIDENTS_TABLE

log = logging.getLogger(__name__)


def alert_from_json(raw: bytes) -> Alert:
    return _alert_from_dict(json.loads(raw))


def _alert_from_dict(d: dict) -> Alert:
    d["ts"] = datetime.fromisoformat(d["ts"])
    return Alert(**d)


def forget_record(key: str, resolved_at: float) -> bytes:
    """A control record on chat.alerts: forget this resolved incident (the sweep decides, the agent deletes, so
    that the table changes only inside the stream, in the key's own changelog partition)."""
    return json.dumps({"control": "forget_incident", "dedup_key": key, "resolved_at": resolved_at}).encode()


def alert_to_json(alert: Alert) -> bytes:
    return json.dumps(alert.to_dict(), ensure_ascii=False, default=str).encode()


def targets(alert: Alert, rule_channels, channels: list[str]) -> list[str]:
    """The configured channels a notification goes to: the rule's (default: all). A channel's own
    backlog alert goes to the others: it cannot reach on-call through the channel that is stuck."""
    out = list(channels) if rule_channels is None else [n for n in rule_channels if n in channels]
    if alert.kind == "channel_backlog":
        out = [n for n in out if n != alert.details.get("channel")]
    return out


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    settings = rt.settings
    rules = rt.rules
    book = IncidentBook(rules)
    index = IncidentIndex()
    outboxes = app.outbox_topics  # channel name → its outbox topic (agents/delivery.py)
    incidents = app.Table(INCIDENTS_TABLE, partitions=settings.topics.partitions,
                          key_type=str)

    @app.agent(app.alerts_topic, name="convmon.alerts", concurrency=1)
    async def handle_alerts(stream):
        """Micro-batches: incident decisions one alert at a time (in order); the batch's notifications go to
        the outbox and are acknowledged by Kafka before the incident states are written; one ClickHouse
        insert per batch."""
        rereader = Rereader(app, rt.metrics)
        cfg = settings.worker
        # a short window: an alert waits at most 50 ms for others to share its insert
        async for events in stream.take_events(cfg.batch_size, within=min(cfg.batch_within_s, 0.05)):
            await rereader.check(events)
            records: list[AlertRecord] = []
            decisions: Counter = Counter()
            states: dict[str, dict | None] = {}  # this batch's incident states, written after the outbox has them
            changes: list[tuple] = []  # (event, key, new state or None to forget it), in event order
            sent = []
            now = time.time()
            for ev in events:
                d = json.loads(ev.value)
                if d.get("control") == "forget_incident":
                    key = d["dedup_key"]
                    st = states[key] if key in states else incidents.get(key)
                    if st and st.get("status") == "resolved" and st.get("resolved_at") == d.get("resolved_at"):
                        states[key] = None
                        changes.append((ev, key, None))
                    continue
                alert = _alert_from_dict(d)
                key = alert.dedup_key
                state, decision = book.offer(states[key] if key in states else incidents.get(key), alert, now=now)
                rt.metrics.alerts.labels(alert.kind, decision.delivery).inc()
                decisions[decision.delivery] += 1
                if decision.delivery == "duplicate":
                    continue  # already decided and recorded before a restart
                states[key] = state
                changes.append((ev, key, state))
                channels: list[str] = []
                if decision.notification is not None:
                    rule = rules.get(alert.kind, {"app": alert.app, "model_name": alert.model_name,
                                                  "model_version": alert.model_version, "role": alert.role})
                    channels = targets(alert, rule.channels if rule else None, list(outboxes))
                    body = outbox.encode(decision.notification)
                    for name in channels:
                        sent.append(await outboxes[name].send(key=key.encode(), value=body))
                records.append(AlertRecord(alert, decision.delivery, tuple(channels)))
            if sent:
                await asyncio.gather(*sent)  # the outbox has every decided notification…
            for ev, key, state in changes:  # …before any incident records it as notified
                with processing(ev):  # the incidents changelog record goes to this event's partition
                    if state is not None:
                        incidents[key] = state
                    elif key in incidents:
                        del incidents[key]
                index.note(key, state)
            await rt.sink.write(records, table="alerts")
            yield dict(decisions)  # the batch's offsets are acknowledged once the agent asks for the next one

    @app.timer(settings.alerting.sweep_interval_s)
    async def sweep_incidents():
        """Resolve quiet incidents and forget old resolved ones, through chat.alerts, so the table changes only
        inside the stream. Looks at the open and resolved incidents only (IncidentIndex), not at every key."""
        now = time.time()
        if index.needs_rebuild(app.consumer_generation_id):
            index.rebuild(list(incidents.items()), app.consumer_generation_id)
        for key in list(index.open):
            state = incidents.get(key)
            if not state or state.get("status") != "open":
                index.note(key, state)
                continue
            _, notification = book.sweep(state, now)
            if notification is not None:
                resolved = notification.alert
                resolved.alert_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"resolve:{key}:{state['first_at']}"))
                resolved.ts = datetime.now(timezone.utc)
                resolved.summary = f"resolved after {int(now - state['last_alert_at'])}s without alerts: " + \
                    resolved.summary
                await app.alerts_topic.send(key=key.encode(), value=alert_to_json(resolved))
        for key in index.resolved_before(now - settings.alerting.incident_retention_s):
            state = incidents.get(key)
            if state and book.expired(state, now, settings.alerting.incident_retention_s):
                await app.alerts_topic.send(key=key.encode(), value=forget_record(key, state["resolved_at"]))
            elif not state:
                index.note(key, None)

    app.handle_alerts = handle_alerts
    app.incidents = incidents
    app.sweep_incidents = sweep_incidents
