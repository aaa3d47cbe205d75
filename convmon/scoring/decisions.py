"""From the encoder's per-piece outputs to one decision per signal, and the evidence behind it.

A message of more than MAX_TOKENS word pieces is scored as several pieces (windows and sentences,
scoring/suite.py). The rules here turn those piece scores into the suite's decisions, with the numbers
`convmon models build` calibrated into models/manifest.json (`suite.decisions`):

- **Length without inflation.** Taking the highest piece gives a long reply one more chance of a false
  hit for every piece. A risk signal's score over n pieces is therefore the highest piece's logit minus
  `length_alpha · ln(n)`: with a logistic tail, the false-hit rate of the max over n pieces grows like n,
  and the correction takes that growth back (alpha = 1 takes all of it; the build picks the smallest alpha
  that keeps long texts within 2x of short ones on benign tuning traffic). A short message (one piece) is
  unchanged. A clearly toxic sentence late in a long reply is still found: its own piece is far above.
- **Thresholds at an alert budget.** Each signal's threshold is chosen for a false-hit budget on benign
  tuning traffic (`budget_per_1000`), not for F1 on a balanced split.
- **Where a signal applies.** Jailbreak / prompt injection is decided on the attack surfaces only: user
  and tool turns. An assistant reply gets a score but no `jailbreak_hit`.
- **Topic gate.** A policy judges only pieces that are about its topic: a logistic relevance head on the
  piece's embedding (`gates`), trained by the build on the policy's texts against ordinary chat. An
  off-topic piece never becomes a policy hit, whatever its policy score.
- **Languages.** A turn in a language the suite was not trained on gets no decision (scoring/language.py).

Evidence: every hit names the piece that decided it, as character offsets into the redacted text
(`text_redacted`) and the redacted excerpt itself, so a page shows why it fired without raw text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .pii import find, redact

RISK_SIGNALS = ("toxicity", "jailbreak")
JAILBREAK_ROLES = ("user", "tool")  # where an attack on the model arrives
EXCERPT_CHARS = 300  # at most this much of the deciding piece goes into a page


@dataclass(frozen=True)
class TopicGate:
    weights: np.ndarray  # [EMBEDDING_DIM]
    bias: float
    threshold: float  # relevance at or above which a piece is about the topic

    def relevance(self, embeddings: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(embeddings @ self.weights + self.bias)))


@dataclass(frozen=True)
class Calibration:
    """The manifest's `suite.decisions` (with the defaults of a suite built before they existed)."""

    thresholds: dict[str, float]  # toxicity, jailbreak and every policy id
    length_alpha: dict[str, float] = field(default_factory=dict)
    gates: dict[str, TopicGate] = field(default_factory=dict)
    languages: frozenset[str] = frozenset({"en"})
    jailbreak_roles: tuple[str, ...] = JAILBREAK_ROLES
    policy_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, suite: dict) -> "Calibration":
        d = suite.get("decisions") or {}
        thresholds = {**suite["thresholds"], **suite["policy_thresholds"]}
        gates = {pid: TopicGate(np.asarray(g["weights"], np.float32), float(g["bias"]), float(g["threshold"]))
                 for pid, g in (d.get("gates") or {}).items()}
        return cls(thresholds=thresholds, length_alpha={k: float(v) for k, v in (d.get("length_alpha") or {}).items()},
                   gates=gates, languages=frozenset(d.get("languages", ["en"])),
                   jailbreak_roles=tuple(d.get("jailbreak_roles", JAILBREAK_ROLES)),
                   policy_roles={k: tuple(v) for k, v in (d.get("policy_roles") or {}).items()})


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def aggregate(piece_scores: np.ndarray, alpha: float, mask: Optional[np.ndarray] = None) -> tuple[float, int]:
    """(score, index of the deciding piece) over one message's pieces; (0.0, -1) when the mask keeps none.

    One piece: its own score. n pieces: sigmoid(max logit − alpha · ln n), n counting every piece."""
    scores = np.asarray(piece_scores, np.float64)
    n = len(scores)
    if mask is not None:
        scores = np.where(mask, scores, -1.0)
    i = int(np.argmax(scores))
    if scores[i] < 0:
        return 0.0, -1
    if n == 1 or alpha == 0:
        return float(scores[i]), i
    z = float(logit(scores[i])) - alpha * math.log(n)
    return 1.0 / (1.0 + math.exp(-z)), i


@dataclass(frozen=True, slots=True)
class Decision:
    signal: str  # toxicity | jailbreak | a policy id
    score: float  # the reported score: aggregated over every piece
    decided: float  # the score the decision compared: a policy's over its on-topic pieces only (0: none)
    hit: Optional[bool]  # None: not decided (wrong role, unsupported language)
    piece: int  # the deciding piece (index within the message), -1 when none
    relevance: Optional[float] = None  # the topic gate's relevance of the deciding piece (policies)
    on_topic: Optional[bool] = None  # some piece passes the policy's topic gate (None: no gate)


def decide(piece_outputs: dict[str, np.ndarray], cal: Calibration, policy_ids: Sequence[str], role: str,
           judged: bool) -> dict[str, Decision]:
    """One message: its pieces' risk scores ([n] toxicity and jailbreak, [n, P] policy, [n, D] embedding)
    → a Decision per risk signal and policy."""
    out = {}
    for sig in RISK_SIGNALS:
        score, piece = aggregate(piece_outputs[sig], cal.length_alpha.get(sig, 0.0))
        applies = judged and (sig != "jailbreak" or role in cal.jailbreak_roles)
        out[sig] = Decision(sig, score, score, (score >= cal.thresholds[sig]) if applies else None, piece)
    for j, pid in enumerate(policy_ids):
        scores = piece_outputs["policy"][:, j]
        alpha = cal.length_alpha.get(pid, 0.0)
        gate = cal.gates.get(pid)
        relevance = gate.relevance(piece_outputs["text_embedding"]) if gate is not None else None
        on_topic = relevance >= gate.threshold if gate is not None else None
        gated, piece = aggregate(scores, alpha, on_topic)
        raw, raw_piece = aggregate(scores, alpha)
        roles = cal.policy_roles.get(pid)
        applies = judged and (roles is None or role in roles)
        hit = (piece >= 0 and gated >= cal.thresholds[pid]) if applies else None
        # the reported score is the policy's own (ungated); the decision is the gated one
        deciding = piece if hit else raw_piece
        out[pid] = Decision(pid, raw, gated, hit, deciding,
                            None if relevance is None or deciding < 0 else round(float(relevance[deciding]), 4),
                            None if on_topic is None else bool(on_topic.any()))
    return out


def redacted_span(norm_text: str, start: int, end: int) -> tuple[int, int, str]:
    """Offsets [start, end) of the normalised text → (start, end, excerpt) in its redacted copy (the
    `text_redacted` the PII scorer stores: every finding replaced by [TYPE]). A finding that crosses the
    span's edge is taken whole, so the excerpt never shows part of a secret."""
    findings = find(norm_text)
    shift = 0
    for f in findings:  # sorted by start
        placeholder = len(f.type) + 2
        if f.start < start < f.end:
            start = f.start
        if f.start < end < f.end:
            end = f.end
        if f.end <= start:
            shift += placeholder - (f.end - f.start)
    s_out = start + shift
    e_out = end + shift + sum(len(f.type) + 2 - (f.end - f.start) for f in findings if start <= f.start and f.end <= end)
    red = redact(norm_text, findings) if findings else norm_text
    excerpt = red[s_out:e_out]
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return s_out, e_out, excerpt
