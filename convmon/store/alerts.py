"""The `alerts` sink: every alert candidate with what happened to it (notified, suppressed, resolved)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from clickhouse_connect.driver.client import Client

from ..alerting.model import Alert

COLUMNS = ("alert_id", "ts", "kind", "severity", "status", "app", "model_name", "model_version", "role",
           "conversation_id", "turn_index", "summary", "details", "labels", "dedup_key", "delivery", "channels")


@dataclass
class AlertRecord:
    alert: Alert
    delivery: str  # notified | suppressed | resolved
    channels: tuple[str, ...] = ()


def to_row(r: AlertRecord) -> list:
    a = r.alert
    return [a.alert_id, a.ts, a.kind, a.severity, a.status, a.app, a.model_name, a.model_version, a.role,
            a.conversation_id, a.turn_index, a.summary, json.dumps(a.details, default=str, ensure_ascii=False),
            {str(k): str(v) for k, v in a.labels.items()}, a.dedup_key, r.delivery, list(r.channels)]


class AlertStore:
    table = "alerts"

    def __init__(self, client: Client):
        self.client = client

    def write(self, rows: Sequence[AlertRecord]) -> int:
        if rows:
            self.client.insert(self.table, [to_row(r) for r in rows], column_names=COLUMNS)
        return len(rows)
