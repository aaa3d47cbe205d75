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
)  # fmt: skip


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
