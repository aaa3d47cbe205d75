"""Alerts and notifications: the data every rule produces and every channel delivers."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Optional, Protocol

Severity = Literal["info", "warning", "critical"]
Status = Literal["firing", "resolved"]

# Alert kinds produced by convmon (issue 4).
KINDS = (
    "toxic_turn", "jailbreak_attempt", "policy_violation",  # single turns
    "sentiment_shift",  # conversation dynamics
    "embedding_drift",  # per model version
    "toxicity_rate", "jailbreak_rate", "policy_rate", "sentiment_drift",  # signal drift
    "channel_backlog",  # convmon itself: an on-call channel is not accepting notifications
    "consumer_stalled",  # convmon itself: a partition neither a re-read nor a group rejoin got moving
)  # fmt: skip
OWN_KINDS = ("channel_backlog", "consumer_stalled")  # about convmon itself, not judgements of chat


@dataclass
class Alert:
    """One alert candidate. `dedup_key` groups repeats of the same incident (one page, not 500)."""

    kind: str
    severity: Severity
    summary: str  # one line, never raw chat text
    dedup_key: str
    app: str = ""
    model_name: str = ""
    model_version: str = ""
    role: str = ""
    conversation_id: Optional[str] = None
    turn_index: Optional[int] = None
    details: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    status: Status = "firing"
    ts: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    alert_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = self.ts.isoformat()
        return d


_NOTIFICATION_NS = uuid.UUID("8f0e9a52-1c57-4a57-9b0e-0c6f75746278")


@dataclass
class Notification:
    """What a channel delivers: one incident (a group of alerts sharing a dedup key)."""

    alert: Alert  # the representative (latest) alert of the group
    count: int = 1  # alerts folded into this notification
    first_ts: Optional[datetime] = None
    status: Status = "firing"

    @property
    def dedup_key(self) -> str:
        return self.alert.dedup_key

    @property
    def notification_id(self) -> str:
        """Stable for one decision: the same alert decided again (re-read after a crash) gives the same id,
        so a receiver can drop a repeated delivery (delivery is at least once, see alerting/outbox.py)."""
        return str(uuid.uuid5(_NOTIFICATION_NS, f"{self.dedup_key}|{self.alert.alert_id}|{self.status}|{self.count}"))


class DeliveryError(Exception):
    """A channel failed to deliver; `retryable` False means retrying cannot help (e.g. HTTP 400)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """An on-call channel: Alertmanager, Slack, PagerDuty, a webhook. One file per channel."""

    name: str

    async def deliver(self, notification: Notification) -> None:
        """Deliver or raise DeliveryError. Must not log secrets (URLs with tokens, routing keys)."""
        ...
