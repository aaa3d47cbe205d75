"""The outbox: a decided notification as a Kafka record, one topic per channel.

The alerts agent decides (incidents.py) and writes each notification to the outbox topic of every
channel it is routed to, and Kafka has acknowledged it before the alert's offset commits. The
delivery agent of that channel (agents/delivery.py) reads the topic and commits a record only once
the channel has accepted it. So a decided page survives an outage of any length and a restart,
and one dead channel holds back only its own topic.

Delivery is at least once. A record delivered just before a hard kill (SIGKILL, power loss), and
not yet committed, is delivered again after the restart; it carries the same `notification_id`
(derived from the alert that decided it), which receivers can use to drop the repeat: the webhook
puts it in the signed body, PagerDuty and Alertmanager fold repeats by their keys.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from .model import Alert, Notification

FORMAT = 1
# Kafka topic names allow [a-zA-Z0-9._-]; a channel name becomes part of its outbox topic's name.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


def topic_names(prefix: str, channel_specs: list[dict]) -> dict[str, str]:
    """Configured channel name (spec `name`, default its `type`) → its outbox topic."""
    return {n: topic_name(prefix, n) for n in (str(c.get("name") or c.get("type", "")) for c in channel_specs)}


def topic_name(prefix: str, channel: str) -> str:
    if not CHANNEL_NAME.fullmatch(channel):
        raise ValueError(f"channel name {channel!r}: use 1-100 of A-Z a-z 0-9 . _ - (it names the channel's "
                         "outbox topic)")
    return f"{prefix}{channel}"


def encode(n: Notification) -> bytes:
    d: dict[str, Any] = {"format": FORMAT, "notification_id": n.notification_id, "alert": n.alert.to_dict(),
                         "count": n.count, "first_ts": n.first_ts.isoformat() if n.first_ts else None,
                         "status": n.status}
    return json.dumps(d, ensure_ascii=False, default=str).encode()


class BadRecord(ValueError):
    """An outbox record that is not a notification this version can read."""


def decode(raw: bytes) -> Notification:
    try:
        d = json.loads(raw)
        if d.get("format") != FORMAT:
            raise BadRecord(f"outbox record format {d.get('format')!r}, expected {FORMAT}")
        a = dict(d["alert"])
        a["ts"] = datetime.fromisoformat(a["ts"])
        first = datetime.fromisoformat(d["first_ts"]) if d.get("first_ts") else None
        return Notification(Alert(**a), int(d["count"]), first, d["status"])
    except BadRecord:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadRecord(f"unreadable outbox record ({type(e).__name__})") from None
