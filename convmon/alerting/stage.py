"""The alert stage: a batch of chat.alerts records → incident changes, outbox notifications, `alerts` rows.

Plain code, no Kafka. The caller (agents/alerts.py) reads incident states from its table, sends the
outbox records and waits until Kafka has them, then writes the incident changes and the rows, in that
order, so an incident is never marked notified before its page is safely queued.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from ..store.alerts import AlertRecord
from ..batch import DeadLetter, RawRecord
from ..wire import ForgetIncident, InvalidRecord, decode_alert_record, encode_alert
from . import outbox
from .incidents import IncidentBook, IncidentIndex
from .model import Alert
from .rules import RuleSet

State = Optional[dict]


def targets(alert: Alert, rule_channels, channels: list[str]) -> list[str]:
    """The configured channels a notification goes to: the rule's (default: all). A channel's own
    backlog alert goes to the others: it cannot reach on-call through the channel that is stuck."""
    out = list(channels) if rule_channels is None else [n for n in rule_channels if n in channels]
    if alert.kind == "channel_backlog":
        out = [n for n in out if n != alert.details.get("channel")]
    return out


@dataclass
class AlertBatch:
    outbox: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (channel, key, notification)
    changes: list[tuple[int, str, State]] = field(default_factory=list)  # (record index, key, new state or None)
    rows: list[AlertRecord] = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)  # (alert kind, delivery) → alerts
    dead: list[DeadLetter] = field(default_factory=list)  # records that are not alert records
    pages: list[int] = field(default_factory=list)  # indices of the records that page: a firing notification sent


class AlertStage:
    def __init__(self, rules: RuleSet, channels: list[str], retention_s: float):
        self.rules, self.channels, self.retention_s = rules, list(channels), retention_s
        self.book = IncidentBook(rules)
        self.index = IncidentIndex()  # the incidents a sweep looks at

    def process(self, records: list[RawRecord], stored: Callable[[str], State], now: float) -> AlertBatch:
        """Decide every record in order; `stored(key)` is the incident's state in the table. A record that is
        not an alert record (wire.decode_alert_record) becomes a dead letter and changes nothing."""
        out = AlertBatch()
        states: dict[str, State] = {}  # this batch's states, ahead of the table
        current = lambda key: states[key] if key in states else stored(key)  # noqa: E731
        for i, raw in enumerate(records):
            try:
                rec = decode_alert_record(raw.value)
            except InvalidRecord as e:
                out.dead.append(DeadLetter(raw, "invalid_alert_record", str(e)))
                continue
            key = rec.dedup_key
            if isinstance(rec, ForgetIncident):
                st = current(key)
                if st and st.get("status") == "resolved" and st.get("resolved_at") == rec.resolved_at:
                    states[key] = None
                    out.changes.append((i, key, None))
                continue
            state, decision = self.book.offer(current(key), rec, now=now)
            out.decisions[(rec.kind, decision.delivery)] += 1
            if decision.delivery == "duplicate":
                continue  # already decided and recorded before a restart
            states[key] = state
            out.changes.append((i, key, state))
            channels: list[str] = []
            if decision.notification is not None:
                rule = self.rules.get(rec.kind, {"app": rec.app, "model_name": rec.model_name,
                                                 "model_version": rec.model_version, "role": rec.role})
                channels = targets(rec, rule.channels if rule else None, self.channels)
                body = outbox.encode(decision.notification)
                out.outbox += [(name, key.encode(), body) for name in channels]
                if channels and decision.notification.status == "firing":
                    out.pages.append(i)
            out.rows.append(AlertRecord(rec, decision.delivery, tuple(channels)))
        return out

    def written(self, key: str, state: State) -> None:
        """The table now holds `state` for `key`."""
        self.index.note(key, state)

    def sweep(self, items: Callable[[], list], stored: Callable[[str], State], generation, now: float) -> list:
        """Records for chat.alerts that resolve quiet incidents and forget old resolved ones (the stream applies
        them, so the table changes only inside it). Looks at the open and resolved incidents only;
        `items()` lists the whole table, read only when the index must be rebuilt (after a rebalance)."""
        index, out = self.index, []
        if index.needs_rebuild(generation):
            index.rebuild(items(), generation)
        for key in list(index.open):
            state = stored(key)
            if not state or state.get("status") != "open":
                index.note(key, state)
                continue
            _, notification = self.book.sweep(state, now)
            if notification is not None:
                out.append(encode_alert(resolution(notification.alert, key, state, now)))
        for key in index.resolved_before(now - self.retention_s):
            state = stored(key)
            if state and self.book.expired(state, now, self.retention_s):
                out.append(ForgetIncident(key, state["resolved_at"]).encode())
            elif not state:
                index.note(key, None)
        return out


def resolution(alert: Alert, key: str, state: dict, now: float) -> Alert:
    """The resolved alert for an incident quiet since `state['last_alert_at']`; one id per incident, so a
    sweep repeated before the stream applied it changes nothing."""
    alert.alert_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"resolve:{key}:{state['first_at']}"))
    alert.ts = datetime.now(timezone.utc)
    alert.summary = f"resolved after {int(now - state['last_alert_at'])}s without alerts: " + alert.summary
    return alert
