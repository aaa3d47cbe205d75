"""Wiring: the outbox delivery (alerting/outbox_delivery.py) and the channel-backlog watch, on the Faust app.

The delivery reads each alert channel's outbox topic with its own consumer group
(`<app_id>.deliver`) and commits a record only once its channel has accepted the page, so an
outage of any length and a restart lose nothing (see that module for why this is not a Faust
agent). A timer watches each channel's backlog (`convmon_channel_pending`,
`convmon_channel_oldest_pending_seconds`) and raises a `channel_backlog` alert, sent through the
other channels, when the oldest waiting page is older than `alerting.backlog_alert_after_s`; it
resolves once the backlog has cleared.
"""

from __future__ import annotations

import logging
import time
import uuid

import faust

from ..alerting import outbox
from ..alerting.channels import build_channels
from ..alerting.delivery import Dispatcher
from ..alerting.model import Alert
from ..alerting.outbox_delivery import OutboxDelivery
from .alerts import alert_to_json
from .topics import aiokafka_config

log = logging.getLogger(__name__)


def backlog_alert(channel: str, stats: dict, first_seen: float, status: str) -> Alert:
    """A channel_backlog alert for one backlog episode of `channel` (its alert_id is stable within the episode)."""
    pending, oldest = stats.get("pending", 0), stats.get("oldest_s", 0.0)
    summary = (f"alert channel {channel}: {pending} notification(s) waiting, the oldest for {oldest:.0f}s "
               f"(last error: {stats.get('last_error') or 'none'})" if status == "firing"
               else f"alert channel {channel}: backlog delivered")
    return Alert(kind="channel_backlog", severity="critical", summary=summary,
                 dedup_key=f"channel_backlog|channel={channel}", app="convmon",
                 details={"channel": channel, "pending": pending, "oldest_s": oldest}, status=status,
                 alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"channel_backlog:{channel}:{first_seen}:{status}")))


class BacklogWatch:
    """Decides when a channel's backlog starts and stops being an incident (plain logic, no Kafka)."""

    def __init__(self, after_s: float):
        self.after_s = after_s
        self.open: dict[str, float] = {}  # channel → when this worker first saw its backlog too old

    def check(self, stats: dict[str, dict], now: float) -> list[Alert]:
        out = []
        for name, s in stats.items():
            old = s.get("pending", 0) > 0 and s.get("oldest_s", 0.0) >= self.after_s
            if old and name not in self.open:
                self.open[name] = now
                out.append(backlog_alert(name, s, now, "firing"))
            elif not s.get("pending", 0) and name in self.open:
                out.append(backlog_alert(name, s, self.open.pop(name), "resolved"))
        return out


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    settings = rt.settings
    channels = build_channels(settings.alerting.channels, settings.secrets())
    dispatchers = {c.name: Dispatcher([c], queue_size=settings.alerting.max_pending) for c in channels}
    app.convmon_dispatchers = dispatchers
    watch = BacklogWatch(settings.alerting.backlog_alert_after_s)
    if not channels:
        return
    topics = outbox.topic_names(settings.topics.outbox_prefix, settings.alerting.channels)

    def consumer(listener):
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(group_id=f"{settings.worker.app_id}.deliver", enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=int(settings.worker.session_timeout_s * 1000),
                             client_id=f"{settings.worker.app_id}-deliver", **aiokafka_config(settings))
        c.subscribe(list(topics.values()), listener=listener)
        return c

    holder: dict = {}

    @app.task
    async def deliver_outbox():
        holder["delivery"] = d = OutboxDelivery(
            consumer, topics, dispatchers, on_unreadable=lambda ch: rt.metrics.outbox_unreadable.labels(ch).inc())
        await d.run()

    @app.on_before_shutdown.connect
    async def _stop_delivery(app, **kwargs):  # pragma: no cover - exercised by the e2e tests
        # What is not delivered within the drain stays uncommitted in the outbox and is delivered after a restart.
        if "delivery" in holder:
            await holder["delivery"].stop(drain_timeout_s=5.0)

    @app.timer(settings.alerting.sweep_interval_s)
    async def watch_backlog():
        stats = {n: s for d in dispatchers.values() for n, s in d.stats().items()}
        for alert in watch.check(stats, time.time()):
            log.warning("%s", alert.summary)
            await app.alerts_topic.send(key=alert.dedup_key.encode(), value=alert_to_json(alert))
