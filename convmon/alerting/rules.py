"""Alert rules from a TOML file: condition, severity, labels, grouping key, cooldown, overrides.

    [[rules]]
    kind = "toxic_turn"           # one of convmon.alerting.model.KINDS
    severity = "warning"
    threshold = 0.9               # single-turn kinds: score at or above this is a candidate
                                  # (default: the model suite's shipped threshold)
    group_by = ["app", "model_name", "model_version", "conversation_id"]   # → dedup key
    cooldown_s = 900              # an open incident folds repeats instead of paging again…
    renotify_s = 3600             # …and re-pages (with the folded count) at most this often
    resolve_after_s = 1800        # an incident with no new alert for this long is resolved
    labels = { team = "trust-safety" }
    channels = ["alertmanager"]   # names of configured channels (default: all)

    [[rules.overrides]]           # first match wins; any rule field may be overridden
    match = { app = "tutor", model_version = "2024-11-20" }
    severity = "critical"
    threshold = 0.8
"""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from .model import KINDS, Alert
from ..resources import data_path
from ..scoring.decisions import JAILBREAK_ROLES

GROUP_FIELDS = ("kind", "app", "model_name", "model_version", "role", "conversation_id")
SUMMARY_EXCERPT = 160  # characters of the deciding (redacted) text quoted in a page's summary
_ALERT_NS = uuid.UUID("1d5a3e0c-4a3e-4e0b-9a7e-6c6f6e6d6f6e")


@dataclass(frozen=True)
class Rule:
    kind: str
    severity: str = "warning"
    threshold: Optional[float] = None
    group_by: tuple[str, ...] = ("app", "model_name", "model_version")
    cooldown_s: float = 900
    renotify_s: float = 3600
    resolve_after_s: float = 1800
    labels: dict[str, str] = field(default_factory=dict)
    channels: Optional[tuple[str, ...]] = None
    enabled: bool = True
    overrides: tuple[tuple[dict[str, str], dict[str, Any]], ...] = ()

    def for_context(self, ctx: dict[str, Any]) -> "Rule":
        """The rule with the first matching override applied (per-app / per-model settings)."""
        for match, changes in self.overrides:
            if all(str(ctx.get(k, "")) == str(v) for k, v in match.items()):
                return replace(self, **changes)
        return self

    def dedup_key(self, ctx: dict[str, Any]) -> str:
        parts = [self.kind] + [f"{f}={ctx.get(f) or ''}" for f in self.group_by]
        return "|".join(parts)


def _rule_from(raw: dict) -> Rule:
    raw = dict(raw)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"alert rule kind {kind!r} is not one of {', '.join(KINDS)}")
    for f in raw.get("group_by", ()):
        if f not in GROUP_FIELDS:
            raise ValueError(f"rule {kind}: group_by field {f!r} is not one of {GROUP_FIELDS}")
    overrides = []
    for o in raw.pop("overrides", []):
        o = dict(o)
        match = o.pop("match", {})
        if "group_by" in o:
            o["group_by"] = tuple(o["group_by"])
        overrides.append((match, o))
    for k in ("group_by", "channels"):
        if k in raw and raw[k] is not None:
            raw[k] = tuple(raw[k])
    return Rule(**raw, overrides=tuple(overrides))


@dataclass
class RuleSet:
    rules: dict[str, Rule]

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "RuleSet":
        text = Path(path).read_text() if path else default_rules_text()
        data = tomllib.loads(text)
        rules = {}
        for raw in data.get("rules", []):
            r = _rule_from(raw)
            rules[r.kind] = r
        return cls(rules)

    def get(self, kind: str, ctx: dict[str, Any]) -> Optional[Rule]:
        r = self.rules.get(kind)
        if r is None:
            return None
        r = r.for_context(ctx)
        return r if r.enabled else None

    def make_alert(self, kind: str, ctx: dict[str, Any], summary: str, details: dict, source_id: str) -> Optional[Alert]:
        """An alert candidate for `kind` in context `ctx`, or None when no enabled rule covers it.

        `source_id` identifies what raised it (an event_id, a window id): the alert_id is derived
        from it, so re-processing the same source yields the same alert, not a second one.
        """
        rule = self.get(kind, ctx)
        if rule is None:
            return None
        return Alert(
            kind=kind,
            severity=rule.severity,  # type: ignore[arg-type]
            summary=summary,
            dedup_key=rule.dedup_key({**ctx, "kind": kind}),
            app=ctx.get("app", ""),
            model_name=ctx.get("model_name", ""),
            model_version=ctx.get("model_version", ""),
            role=ctx.get("role", ""),
            conversation_id=ctx.get("conversation_id"),
            turn_index=ctx.get("turn_index"),
            details=details,
            labels=dict(rule.labels),
            alert_id=str(uuid.uuid5(_ALERT_NS, f"{kind}:{source_id}")),
            **({"ts": ctx["ts"]} if ctx.get("ts") is not None else {}),
        )


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def default_rules_text() -> str:
    return data_path("infra/alerting/rules.toml").read_text("utf-8")


def turn_alerts(rules: RuleSet, scored: Sequence, thresholds: dict[str, float], policy_thresholds: dict[str, float]):
    """Single-turn alert candidates (toxic_turn, jailbreak_attempt, policy_violation) for scored turns.

    A turn alerts on the scorer's own hit decision (toxicity_hit, jailbreak_hit, policy_hits: the suite's
    calibrated thresholds, the same decision rates and windows count). A rule may set its own `threshold`
    (rules.toml) to alert at another level for its scope; then that rule alone compares the score with it.
    `thresholds` / `policy_thresholds` (the suite's) only name the level in the alert text."""
    out = []
    for s in scored:
        t, f = s.turn, s.scores
        if f.get("language_supported") is False:
            continue  # a language the suite does not judge: scores kept, no decision, no page (scoring/language.py)
        ctx = {"app": t.app, "model_name": t.model.name, "model_version": t.model.version, "role": t.role,
               "conversation_id": t.conversation_id, "turn_index": t.turn_index, "ts": t.timestamp}
        checks = []  # (kind, signal, score, the scorer's decision, the suite's threshold)
        if f.get("toxicity") is not None:
            checks.append(("toxic_turn", "toxicity", f["toxicity"], f.get("toxicity_hit"), thresholds.get("toxicity")))
        if f.get("jailbreak") is not None and t.role in JAILBREAK_ROLES:
            checks.append(("jailbreak_attempt", "jailbreak", f["jailbreak"], f.get("jailbreak_hit"),
                           thresholds.get("jailbreak")))
        for pid, score in (f.get("policy_scores") or {}).items():
            checks.append(("policy_violation", pid, score, pid in (f.get("policy_hits") or ()), policy_thresholds.get(pid)))
        evidence = {e["signal"]: e for e in f.get("evidence") or ()}
        for kind, signal, score, hit, suite_threshold in checks:
            # a policy's own overrides (match = { policy = "<id>" }, as `convmon calibrate` proposes) apply to it
            rule = rules.get(kind, {**ctx, "policy": signal} if kind == "policy_violation" else ctx)
            if rule is None:
                continue
            if rule.threshold is not None:
                threshold, fires = rule.threshold, score >= rule.threshold
            else:
                threshold, fires = suite_threshold, bool(hit)
            if not fires:
                continue
            level = f" ≥ {threshold:.2f}" if threshold is not None else ""
            ev = evidence.get(signal)
            quote = f': "{_clip(ev["excerpt"], SUMMARY_EXCERPT)}"' if ev else ""
            summary = (f"{signal} {score:.2f}{level} on {t.role} turn {t.turn_index} of conversation "
                       f"{t.conversation_id} ({t.app}, {t.model.name} {t.model.version}){quote}")
            details = {"signal": signal, "score": round(float(score), 4), "threshold": threshold, "event_id": t.event_id}
            if ev:
                details["evidence"] = ev  # redacted: offsets into text_redacted and that excerpt
            alert = rules.make_alert(kind, {**ctx, **({"policy": signal} if kind == "policy_violation" else {})},
                                     summary, details, source_id=f"{t.event_id}:{signal}")
            if alert is not None:
                out.append(alert)
    return out
