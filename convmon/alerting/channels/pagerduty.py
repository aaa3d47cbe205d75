"""PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).

Trigger::

    POST https://events.pagerduty.com/v2/enqueue
    {"routing_key": <integration key>, "event_action": "trigger", "dedup_key": <≤ 255 chars>,
     "payload": {"summary": <≤ 1024 chars>, "source": ..., "severity": critical|error|warning|info,
                 "timestamp": RFC 3339, "component": ..., "group": ..., "class": ...,
                 "custom_details": {...}}}

Resolve (https://developer.pagerduty.com/docs/events-api-v2/resolve-alerts/): only
`routing_key`, `event_action: "resolve"` and `dedup_key`.

Responses: 202 accepted = success; 400 invalid event = not retryable; 429 (rate limit) and 5xx =
retryable, as are connection errors. Other 4xx (wrong URL, …) are not retried. The routing key is
a secret: it is never logged and is redacted from error messages.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import aiohttp

from convmon.alerting.channels._http import HttpPoster, dumps, rfc3339
from convmon.alerting.model import Notification
from convmon.feedback.oncall import label_command

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}  # anything else → "error"
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def pd_dedup_key(key: str) -> str:
    """PagerDuty caps dedup_key at 255 chars: longer keys map to a stable hash (same on resolve)."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return f"{key[:180]}…sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def pagerduty_event(n: Notification, routing_key: str, source: str = "") -> dict[str, Any]:
    a = n.alert
    event: dict[str, Any] = {"routing_key": routing_key, "dedup_key": pd_dedup_key(a.dedup_key)}
    if n.status == "resolved":
        event["event_action"] = "resolve"
        return event
    summary = a.summary or a.kind
    event["event_action"] = "trigger"
    event["payload"] = {
        "summary": summary if len(summary) <= MAX_SUMMARY else summary[: MAX_SUMMARY - 1] + "…",
        "source": source or a.app or "convmon",
        "severity": SEVERITY.get(a.severity, "error"),
        "timestamp": rfc3339(a.ts),
        "component": ":".join(p for p in (a.model_name, a.model_version) if p) or "convmon",
        "group": a.app or "convmon",
        "class": a.kind,
        "custom_details": {
            "count": n.count,
            "first_ts": rfc3339(n.first_ts) if n.first_ts else None,
            "app": a.app,
            "model_name": a.model_name,
            "model_version": a.model_version,
            "role": a.role,
            "conversation_id": a.conversation_id,
            "turn_index": a.turn_index,
            "alert_id": a.alert_id,
            "label_command": label_command(a),
            "dedup_key": a.dedup_key,
            "labels": a.labels,
            "details": a.details,
        },
    }
    return event


class PagerDutyChannel:
    """Triggers and resolves PagerDuty alerts; convmon's dedup_key is PagerDuty's dedup_key."""

    def __init__(self, name: str, routing_key: str, *, url: str = EVENTS_URL, source: str = "",
                 timeout_s: float = 10.0, session: Optional[aiohttp.ClientSession] = None):
        if not routing_key:
            raise ValueError(f"channel {name!r}: the PagerDuty routing key is empty")
        self.name = name
        self.source = source
        self._routing_key = routing_key
        self._http = HttpPoster(name, url, timeout_s=timeout_s, secrets=[routing_key], session=session)

    async def deliver(self, notification: Notification) -> None:
        event = pagerduty_event(notification, self._routing_key, self.source)
        # 202 is the documented success; other 2xx are accepted too rather than retried forever.
        await self._http.post(dumps(event))

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:
        return f"PagerDutyChannel({self.name!r})"
