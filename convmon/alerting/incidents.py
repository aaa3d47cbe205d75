"""Dedup and grouping: alert candidates → incidents → the few notifications on-call sees.

An incident is everything sharing a dedup key (the rule's `group_by`). The first alert of an
incident pages; repeats are folded (counted, recorded as `suppressed`) and re-page at most every
`renotify_s` with the folded count; an incident is resolved by an explicit resolved alert (a
detector whose condition cleared) or after `resolve_after_s` without alerts, and the resolution
is delivered. A re-processed alert (same alert_id, e.g. after a restart) changes nothing.

State is a plain dict per dedup key, so it can live in a changelog-backed Faust table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from .model import Alert, Notification
from .rules import RuleSet

RECENT_IDS = 64  # alert ids remembered per incident to drop re-deliveries


@dataclass
class Decision:
    delivery: str  # notified | suppressed | resolved | duplicate
    notification: Optional[Notification] = None


class IncidentBook:
    def __init__(self, rules: RuleSet):
        self.rules = rules

    def _rule(self, alert: Alert):
        ctx = {"app": alert.app, "model_name": alert.model_name, "model_version": alert.model_version,
               "role": alert.role, "conversation_id": alert.conversation_id}
        return self.rules.get(alert.kind, ctx)

    def offer(self, state: Optional[dict], alert: Alert, now: float) -> tuple[dict, Decision]:
        """Fold `alert` into its incident; returns the new state and what to do with the alert."""
        rule = self._rule(alert)
        cooldown = rule.cooldown_s if rule else 900
        renotify = rule.renotify_s if rule else 3600
        st = dict(state) if state else None
        if st and alert.alert_id in st["recent_ids"]:
            return st, Decision("duplicate")

        if alert.status == "resolved":
            if not st or st["status"] != "open":
                return st or self._new(alert, now, "resolved"), Decision("duplicate")
            st.update(status="resolved", resolved_at=now, last_alert=alert.to_dict())
            self._remember(st, alert)
            return st, Decision("resolved", Notification(alert, st["count"], _dt(st["first_at"]), "resolved"))

        if not st or st["status"] == "resolved":
            reopened = st is not None
            quiet = not reopened or now - st["last_notified_at"] >= cooldown
            st = self._new(alert, now, "open")
            if reopened and not quiet:
                st["last_notified_at"] = state["last_notified_at"]
                self._remember(st, alert)
                return st, Decision("suppressed")
            self._remember(st, alert)
            return st, Decision("notified", Notification(alert, 1, alert.ts, "firing"))

        st["count"] += 1
        st["last_alert_at"] = now
        st["last_alert"] = alert.to_dict()
        self._remember(st, alert)
        if now - st["last_notified_at"] >= renotify:
            st["last_notified_at"] = now
            return st, Decision("notified", Notification(alert, st["count"], _dt(st["first_at"]), "firing"))
        return st, Decision("suppressed")

    def expired(self, state: dict, now: float, retention_s: float) -> bool:
        """A resolved incident is forgotten `retention_s` after resolution, and never before its rule's cooldown
        has passed (until then it decides whether a recurrence pages again)."""
        if state.get("status") != "resolved" or state.get("resolved_at") is None:
            return False
        alert = Alert(**{**state["last_alert"], "ts": _dt(state["last_alert"]["ts"])})
        rule = self._rule(alert)
        return now - state["resolved_at"] >= max(retention_s, rule.cooldown_s if rule else 900)

    def sweep(self, state: dict, now: float) -> tuple[dict, Optional[Notification]]:
        """Resolve an open incident that has been quiet for its rule's resolve_after_s."""
        if state["status"] != "open":
            return state, None
        alert = Alert(**{**state["last_alert"], "ts": _dt(state["last_alert"]["ts"])})
        rule = self._rule(alert)
        quiet_for = rule.resolve_after_s if rule else 1800
        if now - state["last_alert_at"] < quiet_for:
            return state, None
        st = dict(state, status="resolved", resolved_at=now)
        resolved = Alert(**{**state["last_alert"], "ts": _dt(state["last_alert"]["ts"]), "status": "resolved"})
        return st, Notification(resolved, st["count"], _dt(st["first_at"]), "resolved")

    @staticmethod
    def _new(alert: Alert, now: float, status: str) -> dict:
        return {"dedup_key": alert.dedup_key, "kind": alert.kind, "status": status, "first_at": alert.ts.timestamp(),
                "last_alert_at": now, "last_notified_at": now, "count": 1, "recent_ids": [],
                "last_alert": alert.to_dict()}

    @staticmethod
    def _remember(st: dict, alert: Alert) -> None:
        st["recent_ids"] = (st["recent_ids"] + [alert.alert_id])[-RECENT_IDS:]


class IncidentIndex:
    """Which incidents the periodic sweep must look at: the open ones (to resolve when quiet) and the resolved
    ones (to forget after the retention), so that a sweep costs the incidents that can change, not all of
    them. The agent notes every state it writes; a full rebuild from the table runs after a rebalance
    (partitions moved, the table recovered others) and every `rebuild_every` sweeps."""

    def __init__(self, rebuild_every: int = 20):
        self.open: set[str] = set()
        self.resolved: dict[str, float] = {}  # key → resolved_at
        self.rebuild_every = rebuild_every
        self.sweeps = 0
        self.generation = None

    def note(self, key: str, state: Optional[dict]) -> None:
        self.open.discard(key)
        self.resolved.pop(key, None)
        if not state:
            return
        if state.get("status") == "open":
            self.open.add(key)
        elif state.get("status") == "resolved" and state.get("resolved_at") is not None:
            self.resolved[key] = state["resolved_at"]

    def needs_rebuild(self, generation) -> bool:
        self.sweeps += 1
        return generation != self.generation or self.sweeps % self.rebuild_every == 0

    def rebuild(self, items, generation) -> None:
        self.open.clear()
        self.resolved.clear()
        for key, state in items:
            self.note(key, state)
        self.generation = generation

    def resolved_before(self, t: float) -> list[str]:
        return [k for k, at in self.resolved.items() if at <= t]


def _dt(x) -> datetime:
    from datetime import timezone

    if isinstance(x, datetime):
        return x
    if isinstance(x, str):
        return datetime.fromisoformat(x)
    return datetime.fromtimestamp(float(x), tz=timezone.utc)
