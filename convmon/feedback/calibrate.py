"""Per-app thresholds proposed from the labels, never applied: `convmon calibrate --app APP [--budget N]`.

For each thresholded signal (toxicity, jailbreak, policy:<id>) of one app:

* the labels of its turns with their scores (view feedback_labels; the latest label per turn): positives are
  `confirmed` and `missed`, negatives `false_alarm`;
* the scores that app's turns actually get (`turns`, the last feedback.window_days; user turns only for
  jailbreak, as the jailbreak_attempt rule).

At a threshold t, the expected false alerts per 1,000 turns are 1000 × (share of the app's turns scoring ≥ t)
× (1 − the Wilson 95 % lower bound of precision among labels scoring ≥ t): conservative, so few labels
above t make t look worse, not better. The proposal is the lowest labelled score that stays within the
budget (the most recall), with the recall it keeps on the labelled positives. They are single-turn alert
candidates: an upper bound on pages, as an incident folds repeats. With fewer than `min_labels` labels for
a signal it says so and proposes nothing. The result is a rules.toml snippet for a person to review.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional, Sequence

import numpy as np

from .precision import wilson


@dataclass(frozen=True)
class SignalSpec:
    signal: str
    kind: str  # the alert rule it tunes
    score_sql: str  # the turns column (expression) of its score
    roles: tuple[str, ...] = ()  # () = every role
    match: tuple[tuple[str, str], ...] = ()  # besides app: the override's match (a policy id)


def spec(signal: str) -> Optional[SignalSpec]:
    """What calibrates a signal; None for one without a per-turn threshold (sentiment_shift, drift kinds)."""
    if signal == "toxicity":
        return SignalSpec(signal, "toxic_turn", "toxicity")
    if signal == "jailbreak":
        return SignalSpec(signal, "jailbreak_attempt", "jailbreak", ("user",))
    if signal.startswith("policy:") and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", signal[7:]):
        pid = signal[7:]
        return SignalSpec(signal, "policy_violation", f"policy_scores['{pid}']", match=(("policy", pid),))
    return None


@dataclass
class Proposal:
    signal: str
    kind: str
    labels: int
    positives: int
    turns: int
    threshold: Optional[float] = None  # None: nothing proposed (see `reason`)
    expected_false_per_1000: Optional[float] = None
    recall: Optional[float] = None  # on the labelled positives (confirmed + missed)
    precision_low: Optional[float] = None
    reason: str = ""
    match: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def propose(signal: str, kind: str, scores: Sequence[float], verdicts: Sequence[str], turn_scores: Sequence[float],
            budget: float, min_labels: int) -> Proposal:
    """The lowest labelled score whose expected false alerts per 1,000 turns stay within `budget`.

    Precision is measured on the flagged labels (confirmed, false_alarm) only: nobody labels the turns convmon
    did not flag as fine, so below the lowest flagged label the false alarms are unknown and no threshold is
    proposed there. `missed` labels count for recall."""
    s = np.asarray(scores, float)
    v = np.asarray(verdicts, object)
    flagged, pos = np.isin(v, ("confirmed", "false_alarm")), np.isin(v, ("confirmed", "missed"))
    turns = np.sort(np.asarray(turn_scores, float))
    p = Proposal(signal, kind, int(flagged.sum()), int(pos.sum()), len(turns))
    if p.labels < min_labels:
        p.reason = (f"too few labels: {p.labels} confirmed / false_alarm labels with a score, {min_labels} needed "
                    "(feedback.min_labels)")
        return p
    if not len(turns):
        p.reason = "no scored turns of this app in the window"
        return p
    if not (flagged & pos).any():
        p.reason = "no confirmed label: every flagged label is a false alarm"
        return p
    for t in np.unique(s[flagged]):  # ascending: the first within budget keeps the most recall
        above = flagged & (s >= t)
        k, n = int((above & pos).sum()), int(above.sum())
        low = wilson(k, n)[0]
        share = (len(turns) - np.searchsorted(turns, t, side="left")) / len(turns)
        expected = 1000.0 * share * (1.0 - low)
        if expected <= budget:
            p.threshold = math.floor(float(t) * 1e4) / 1e4  # rounded down: the labelled score itself stays flagged
            p.expected_false_per_1000 = round(expected, 3)
            p.recall, p.precision_low = round(int((pos & (s >= t)).sum()) / p.positives, 3), round(low, 3)
            return p
    p.reason = f"no labelled score keeps expected false alerts within {budget:g} per 1,000 turns"
    return p


def load(client, app: str, signal: str, since_s: float) -> tuple[list[float], list[str], list[float]]:
    """(label scores, their verdicts, the app's turn scores) for one signal."""
    sp = spec(signal)
    assert sp is not None
    labels = client.query(
        "SELECT argMax(score, ts), argMax(verdict, ts) FROM feedback_labels WHERE app = {app:String} "
        "AND signal = {signal:String} AND event_id IS NOT NULL AND ts >= now64(3) - toIntervalSecond({since:UInt64}) "
        "GROUP BY event_id HAVING argMax(score, ts) IS NOT NULL",
        parameters={"app": app, "signal": signal, "since": int(since_s)}).result_rows
    roles = " AND role IN {roles:Array(String)}" if sp.roles else ""
    turns = client.query(
        f"SELECT {sp.score_sql} FROM turns FINAL WHERE app = {{app:String}} AND ts >= now64(3) - "
        f"toIntervalSecond({{since:UInt64}}) AND {sp.score_sql.split('[')[0]} IS NOT NULL{roles}"
        + (f" AND mapContains(policy_scores, '{sp.match[0][1]}')" if sp.match else ""),
        parameters={"app": app, "since": int(since_s), "roles": list(sp.roles)}).result_rows
    return [float(r[0]) for r in labels], [r[1] for r in labels], [float(r[0]) for r in turns]


def calibrate(client, app: str, budget: float, min_labels: int, since_s: float) -> list[Proposal]:
    """A proposal (or the reason for none) for every thresholded signal labelled for `app`."""
    signals = [r[0] for r in client.query("SELECT DISTINCT signal FROM feedback_labels WHERE app = {app:String} "
                                          "ORDER BY signal", parameters={"app": app}).result_rows]
    out = []
    for signal in signals:
        sp = spec(signal)
        if sp is None:
            continue
        p = propose(signal, sp.kind, *load(client, app, signal, since_s), budget=budget, min_labels=min_labels)
        p.match = sp.match
        out.append(p)
    return out


# --- the snippet ---------------------------------------------------------------------------------------------
def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def override_blocks(proposals: Sequence[Proposal], app: str, rules) -> dict[str, str]:
    """Per rule kind, the [[rules.overrides]] to put first among that rule's overrides. The rule's existing
    overrides keep applying: each gets a copy matched on this app too, with the new threshold (first match
    wins, so a plain app override would otherwise hide them for this app)."""
    blocks: dict[str, list[str]] = {}
    for p in proposals:
        if p.threshold is None:
            continue
        rule = rules.rules.get(p.kind)
        base = {"app": app, **dict(p.match)}
        lines = blocks.setdefault(p.kind, [])
        existing = rule.overrides if rule is not None else ()
        for match, changes in existing:
            lines += ["  [[rules.overrides]]", f"  match = {_toml({**base, **match})}"]
            lines += [f"  {k} = {_toml(v)}" for k, v in changes.items() if k != "threshold"]
            lines += [f"  threshold = {p.threshold!r}", ""]
        lines += ["  [[rules.overrides]]", f"  match = {_toml(base)}",
                  f"  threshold = {p.threshold!r}   # expected false alerts {p.expected_false_per_1000}/1,000 turns, "
                  f"recall {p.recall} on {p.positives} labelled positives", ""]
    return {k: "\n".join(v) for k, v in blocks.items()}


def snippet(proposals: Sequence[Proposal], app: str, budget: float, rules) -> str:
    """The rules.toml override snippet, with how to apply it; nothing is applied."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# convmon calibrate --app {app} --budget {budget:g} ({now}): PROPOSED, NOT APPLIED.",
           "# Review it; then paste each block into your rules file (alerting.rules_file), inside the [[rules]]",
           "# of its kind, after that rule's own keys and before its other [[rules.overrides]] (first match wins).", ""]
    for kind, block in override_blocks(proposals, app, rules).items():
        out += [f"# --- in [[rules]] kind = \"{kind}\"", block]
    if len(out) == 4:
        out.append("# nothing proposed (see the command's output for why)")
    return "\n".join(out) + "\n"


def insert_overrides(rules_text: str, blocks: dict[str, str]) -> str:
    """`rules_text` with each kind's override block put first among its rule's overrides (what the snippet's
    instructions ask a person to do; `convmon calibrate --rules-out` writes it for review)."""
    parts = re.split(r"(?m)^(?=\[\[rules\]\])", rules_text)
    for i, part in enumerate(parts):
        m = re.search(r'(?m)^kind\s*=\s*"([^"]+)"', part)
        if not m or m.group(1) not in blocks:
            continue
        at = re.search(r"(?m)^\s*\[\[rules\.overrides\]\]", part)
        pos = at.start() if at else len(part)
        parts[i] = part[:pos].rstrip("\n") + "\n\n" + blocks[m.group(1)] + "\n" + part[pos:].lstrip("\n")
    return "".join(parts)
