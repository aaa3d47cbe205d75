"""Slack incoming webhook (https://api.slack.com/messaging/webhooks, Block Kit section blocks).

Payload: `{"text": <fallback for notifications>, "blocks": [section, section, ...]}` where every
block is `{"type": "section", "text": {"type": "mrkdwn", "text": ...}}` or a section with
`"fields"` (≤ 10 mrkdwn texts of ≤ 2000 chars; section text ≤ 3000 chars). `&`, `<`, `>` in our
values are escaped as Slack's "Formatting text" docs require. The webhook URL is a secret (the
path is the token): it is never logged.

Slack answers 200 `ok`; errors are 400 `invalid_payload`, 403 `action_prohibited`, 404
`no_service`, 410 `channel_is_archived` (not retried) and 429 with Retry-After / 5xx (retried).
"""

from __future__ import annotations

from typing import Any, Optional

import aiohttp

from convmon.alerting.channels._http import HttpPoster, dumps, rfc3339
from convmon.alerting.model import Notification
from convmon.feedback.oncall import label_command

_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
RESOLVED_EMOJI = ":white_check_mark:"


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(label: str, value: Any) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(f"*{label}*\n{escape(str(value)) or '-'}", 2000)}


def slack_payload(n: Notification) -> dict[str, Any]:
    a = n.alert
    resolved = n.status == "resolved"
    emoji = RESOLVED_EMOJI if resolved else _EMOJI.get(a.severity, ":bell:")
    state = "RESOLVED" if resolved else "FIRING"
    headline = f"{emoji} *[{state}] {escape(a.kind)}* ({escape(a.severity)})"
    text = f"{emoji} [{state}] {a.kind} ({a.severity}): {a.summary}"
    if resolved:
        headline += " — resolved"
    fields = [
        _field("Status", "resolved" if resolved else "firing"),
        _field("Severity", a.severity),
        _field("Kind", a.kind),
        _field("App", a.app),
        _field("Model", a.model_name),
        _field("Version", a.model_version),
        _field("Count", n.count),
        _field("First seen", rfc3339(n.first_ts) if n.first_ts else rfc3339(a.ts)),
        _field("Dedup key", a.dedup_key),
    ]
    if a.conversation_id:
        turn = f" turn {a.turn_index}" if a.turn_index is not None else ""
        fields.append(_field("Conversation", f"{a.conversation_id}{turn}"))
    label = label_command(a)
    footer = f"Alert id `{escape(a.alert_id)}`" + (f" · label it: `{escape(label)}`" if label else "")
    return {
        "text": _clip(escape(text), 3000),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"{headline}\n{escape(a.summary)}", 3000)}},
            {"type": "section", "fields": fields[:10]},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(footer, 3000)}},
        ],
    }


class SlackChannel:
    """Posts one message per notification to a Slack incoming webhook."""

    def __init__(self, name: str, url: str, *, timeout_s: float = 10.0,
                 session: Optional[aiohttp.ClientSession] = None):
        self.name = name
        self._http = HttpPoster(name, url, timeout_s=timeout_s, session=session)

    async def deliver(self, notification: Notification) -> None:
        await self._http.post(dumps(slack_payload(notification)), ok=(200,))

    async def close(self) -> None:
        await self._http.close()

    def __repr__(self) -> str:
        return f"SlackChannel({self.name!r})"
