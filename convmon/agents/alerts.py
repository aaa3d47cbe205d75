"""Agent: chat.alerts → incidents (dedup/grouping) → ClickHouse `alerts` + on-call channels.

chat.alerts is keyed by dedup_key, so one incident's alerts meet in one partition and its
state lives in the changelog-backed table `incidents`: a restarted worker resumes it and a
re-processed alert (same alert_id) pages nobody twice. Channel delivery runs in the
Dispatcher's background queues, so a dead channel never blocks this agent or scoring.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import faust

from ..alerting.channels import build_channels
from ..alerting.delivery import Dispatcher
from ..alerting.incidents import IncidentBook
from ..alerting.model import Alert
from ..store.alerts import AlertRecord
from .current import processing
from .rereads import Rereader

log = logging.getLogger(__name__)


def alert_from_json(raw: bytes) -> Alert:
    d = json.loads(raw)
    d["ts"] = datetime.fromisoformat(d["ts"])
    return Alert(**d)


def alert_to_json(alert: Alert) -> bytes:
    return json.dumps(alert.to_dict(), ensure_ascii=False, default=str).encode()


class Router:
    """One Dispatcher per channel, so each rule can route to a subset of channels."""

    def __init__(self, channels):
        self.dispatchers = {c.name: Dispatcher([c]) for c in channels}

    def route(self, notification, names) -> list[str]:
        targets = list(self.dispatchers) if names is None else [n for n in names if n in self.dispatchers]
        for n in targets:
            self.dispatchers[n].submit(notification)
        return targets

    def start(self) -> None:
        for d in self.dispatchers.values():
            d.start()

    async def stop(self, drain_timeout: float) -> None:
        for d in self.dispatchers.values():
            await d.stop(drain_timeout)

    def stats(self) -> dict:
        return {n: s for d in self.dispatchers.values() for n, s in d.stats().items()}


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    settings = rt.settings
    rules = rt.rules
    book = IncidentBook(rules)
    router = Router(build_channels(settings.alerting.channels, settings.secrets()))
    app.convmon_router = router
    incidents = app.Table("convmon-incidents", partitions=settings.topics.partitions,
                          key_type=str)

    @app.task
    async def _start_channels():
        router.start()

    @app.agent(app.alerts_topic, name="convmon.alerts", concurrency=1)
    async def handle_alerts(stream):
        """Micro-batches: incident decisions one alert at a time (in order), one ClickHouse insert per batch."""
        rereader = Rereader(app, rt.metrics)
        cfg = settings.worker
        # a short window: an alert waits at most 50 ms for others to share its insert
        async for events in stream.take_events(cfg.batch_size, within=min(cfg.batch_within_s, 0.05)):
            await rereader.check(events)
            records: list[AlertRecord] = []
            decisions: Counter = Counter()
            now = time.time()
            for ev in events:
                alert = alert_from_json(ev.value)
                with processing(ev):  # the incidents changelog record goes to this event's partition
                    state, decision = book.offer(incidents.get(alert.dedup_key), alert, now=now)
                    incidents[alert.dedup_key] = state
                rt.metrics.alerts.labels(alert.kind, decision.delivery).inc()
                decisions[decision.delivery] += 1
                if decision.delivery == "duplicate":
                    continue  # already decided and recorded before a restart
                channels: list[str] = []
                if decision.notification is not None:
                    rule = rules.get(alert.kind, {"app": alert.app, "model_name": alert.model_name,
                                                  "model_version": alert.model_version, "role": alert.role})
                    channels = router.route(decision.notification, rule.channels if rule else None)
                records.append(AlertRecord(alert, decision.delivery, tuple(channels)))
            await rt.sink.write(records, table="alerts")
            yield dict(decisions)  # the batch's offsets are acknowledged once the agent asks for the next one

    @app.timer(settings.alerting.sweep_interval_s)
    async def sweep_incidents():
        """Quiet incidents resolve through chat.alerts, so the table changes only inside the stream."""
        now = time.time()
        for key, state in list(incidents.items()):
            if not state or state.get("status") != "open":
                continue
            _, notification = book.sweep(state, now)
            if notification is not None:
                resolved = notification.alert
                resolved.alert_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"resolve:{key}:{state['first_at']}"))
                resolved.ts = datetime.now(timezone.utc)
                resolved.summary = f"resolved after {int(now - state['last_alert_at'])}s without alerts: " + \
                    resolved.summary
                await app.alerts_topic.send(key=key.encode(), value=alert_to_json(resolved))

    @app.on_before_shutdown.connect
    async def _drain_channels(app, **kwargs):  # pragma: no cover - exercised by the e2e tests
        await router.stop(drain_timeout=5.0)

    app.handle_alerts = handle_alerts
    app.incidents = incidents
