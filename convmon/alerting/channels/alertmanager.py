"""Prometheus Alertmanager API v2 (https://prometheus.io/docs/alerting/latest/clients/ and the
OpenAPI spec `api/v2/openapi.yaml`, operation `postAlerts`).

    POST {base}/api/v2/alerts
    [{"labels": {"alertname": kind, "severity", "app", "model_name", "model_version",
                 "dedup_key", ...alert.labels},
      "annotations": {"summary", "description", ...},
      "startsAt": RFC 3339, "endsAt": RFC 3339 (resolve: now), "generatorURL"?: str}]

Alertmanager identifies an alert by its label set, so the labels depend only on the incident
(never on alert ids, counts or timestamps): a fire and its resolve carry identical labels and
Alertmanager folds repeats into one alert and one grouped notification. Per-alert data goes to
annotations. Empty label values are omitted (Prometheus semantics: empty = absent), label names
are sanitised to `[a-zA-Z_][a-zA-Z0-9_]*`, and convmon's own labels win over `alert.labels`.

A firing alert is sent without `endsAt` (Alertmanager then resolves it after its
`resolve_timeout` unless it is re-sent) unless `firing_ttl_s` is set. 200 = success; 400 (invalid
alert) is not retried; 5xx/429/connection errors are.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import aiohttp

from convmon.alerting.channels._http import HttpPoster, dumps, rfc3339
from convmon.alerting.model import Notification
from convmon.feedback.oncall import label_command

_BAD_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    name = _BAD_LABEL_CHARS.sub("_", name) or "_"
    return f"_{name}" if name[0].isdigit() else name


def alert_labels(n: Notification) -> dict[str, str]:
    """The identity of the incident in Alertmanager: identical for fire and resolve."""
    a = n.alert
    own = {"alertname": a.kind, "severity": a.severity, "app": a.app, "model_name": a.model_name,
           "model_version": a.model_version, "dedup_key": a.dedup_key}
    labels = {label_name(k): str(v) for k, v in a.labels.items()}
    labels.update(own)
    return {k: v for k, v in labels.items() if v != ""}


def alertmanager_alert(n: Notification, *, now: Optional[datetime] = None, generator_url: str = "",
                       firing_ttl_s: Optional[float] = None) -> dict[str, Any]:
    a = n.alert
    now = now or datetime.now(timezone.utc)
    starts = n.first_ts or a.ts
    if starts.tzinfo is None:
        starts = starts.replace(tzinfo=timezone.utc)
    starts = min(starts, now)  # Alertmanager rejects startsAt after endsAt
    description = f"{a.summary}\n{n.count} alert(s) since {rfc3339(starts)}; status {n.status}."
    annotations = {"summary": a.summary, "description": description, "count": str(n.count),
                   "alert_id": a.alert_id}
    label = label_command(a)
    if label:
        annotations["label_command"] = label
    if a.conversation_id:
        annotations["conversation_id"] = a.conversation_id
        if a.turn_index is not None:
            annotations["turn_index"] = str(a.turn_index)
    if a.details:
        annotations["details"] = json.dumps(a.details, default=str, sort_keys=True)[:4000]
    out: dict[str, Any] = {"labels": alert_labels(n), "annotations": annotations, "startsAt": rfc3339(starts)}
    if n.status == "resolved":
        out["endsAt"] = rfc3339(now)
    elif firing_ttl_s:
        out["endsAt"] = rfc3339(now + timedelta(seconds=firing_ttl_s))
    if generator_url:
        out["generatorURL"] = generator_url
    return out


class AlertmanagerChannel:
    """Pushes alerts to an Alertmanager (or an HA pair behind one URL)."""

    def __init__(self, name: str, url: str, *, generator_url: str = "", firing_ttl_s: Optional[float] = None,
                 timeout_s: float = 10.0, session: Optional[aiohttp.ClientSession] = None):
        self.name = name
        self.generator_url = generator_url
        self.firing_ttl_s = firing_ttl_s
        self._http = HttpPoster(name, url.rstrip("/") + "/api/v2/alerts", timeout_s=timeout_s, session=session)

    async def deliver(self, notification: Notification) -> None:
        alert = alertmanager_alert(notification, generator_url=self.generator_url, firing_ttl_s=self.firing_ttl_s)
        await self._http.post(dumps([alert]))

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:
        return f"AlertmanagerChannel({self.name!r})"
