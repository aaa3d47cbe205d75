"""On-call: the command every page names to label its alert, and the record that command publishes."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Optional

from ..alerting.model import OWN_KINDS
from ..contract import format_ts
from .contract import Feedback

_KIND_SIGNAL = {"toxic_turn": "toxicity", "jailbreak_attempt": "jailbreak"}


def alert_signal(kind: str, details: Optional[dict] = None) -> Optional[str]:
    """The feedback signal of an alert kind (policy_violation: policy:<id> from its details); None for
    convmon's own kinds (channel_backlog, consumer_stalled), which are not judgements of chat."""
    if kind == "policy_violation":
        pid = (details or {}).get("signal")
        return f"policy:{pid}" if pid else None
    if kind in OWN_KINDS:
        return None
    return _KIND_SIGNAL.get(kind, kind)


def label_command(alert) -> Optional[str]:
    """What a page prints so on-call can label it (None when the alert cannot be labelled)."""
    signal = alert_signal(alert.kind, alert.details)
    if signal is None:
        return None
    return f"convmon alerts label {alert.alert_id} confirmed|false_alarm --signal {signal}"


def alert_label(alert_id: str, verdict: str, signal: str, reporter: Optional[str] = None,
                note: Optional[str] = None, now: Optional[datetime] = None) -> Feedback:
    """The chat.feedback record of an on-call label (validated: raises pydantic's ValidationError)."""
    return Feedback.model_validate({
        "feedback_id": str(uuid.uuid4()), "alert_id": alert_id, "signal": signal, "verdict": verdict,
        "source": "oncall", "reporter": reporter or None, "note": note or None,
        "ts": format_ts(now or datetime.now(timezone.utc)),
    })
