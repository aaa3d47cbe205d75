"""The suite's decisions, calibrated on benign tuning traffic (`convmon models build`, step 2).

What it chooses (written to models/manifest.json `suite.decisions`, read by convmon/scoring/decisions.py):

1. **Topic gate per policy**: a logistic regression on the drift embedding of each piece (scikit-learn,
   build-time only), the policy's texts (claims, its training rows, its public training sources: both
   stances) against ordinary text (benign chat of the tuning sources, the other tasks' training texts).
   Its threshold keeps GATE_RECALL of the policy's positive tuning rows.
2. **Length correction per risk signal** (`length_alpha`): the smallest alpha in ALPHAS for which benign
   tuning texts of more than 150 words are flagged at most LONG_RATIO times as often as texts of at most
   40 words, measured at LOOSE x the budget (enough flags to compare).
3. **Threshold per signal at a false-hit budget** (BUDGET_PER_1000, per 1,000 benign tuning turns of the
   roles the signal is decided on): the lowest threshold that flags no more than the budget.

Benign tuning traffic is the dev split (half, by text hash) of the benign sources of role "train"
(models/data/public/benign/, DATA_CARD.md); their other half trains as negatives. Never the evaluation
sources that `convmon bench false-pages` measures on.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from convmon.scoring.decisions import JAILBREAK_ROLES, TopicGate, aggregate
from convmon_dev.modelsuite.datasets import benign_rows, public_rows, training_rows, tuning_rows
from convmon_dev.modelsuite.files import load_policies

# False hits per 1,000 benign turns each signal may spend (of the ≤ 5 per 1,000 the pages may cost in all):
# jailbreak's is per 1,000 user turns (it is decided on user and tool turns only).
BUDGET_PER_1000 = {"toxicity": 2.0, "jailbreak": 2.0, "policy": 1.0}
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
LONG_RATIO = 2.0
LOOSE = 5.0
GATE_RECALL = 0.97
GATE_NEGATIVES_PER_TASK = 4000


def words(text: str) -> int:
    return len(text.split())


def bucket(text: str) -> str:
    n = words(text)
    return "short" if n <= 40 else "medium" if n <= 150 else "long"


DECIMALS = 4  # thresholds are stored rounded (manifest, model card); rounding is upward, never under budget


def threshold_at_budget(scores: np.ndarray, per_1000: float) -> float:
    """The lowest threshold of DECIMALS decimals that flags at most per_1000 of 1,000 of `scores` (benign)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    k = int(math.floor(per_1000 / 1000 * len(s)))
    if k >= len(s):
        return 0.0
    step = 10.0 ** -DECIMALS
    t = math.ceil(s[k] / step) * step  # at or above the (k+1)-th highest score ...
    if t <= s[k]:
        t += step  # ... strictly above it
    return round(min(t, 1.0), DECIMALS)


class PieceScores:
    """Per-piece outputs of many texts, run once, aggregated per text for any alpha (and gate) in numpy."""

    def __init__(self, model, texts: list[str], log: Callable[[str], None]):
        self.texts = texts
        chunk, outs, owners, n = 512, [], [], 0
        for i in range(0, len(texts), chunk):
            p = model.encoder.run_pieces(texts[i : i + chunk])
            outs.append(p.outputs)
            owners.append(p.owner + i)
            n += len(p.owner)
            log(f"      scored {min(i + chunk, len(texts))}/{len(texts)} texts ({n} pieces)")
        self.outputs = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        self.owner = np.concatenate(owners)
        self.index = [np.flatnonzero(self.owner == i) for i in range(len(texts))]

    def aggregate(self, name: str, alpha: float, column: int | None = None, gate: TopicGate | None = None) -> np.ndarray:
        v = self.outputs[name] if column is None else self.outputs[name][:, column]
        on = gate.relevance(self.outputs["text_embedding"]) >= gate.threshold if gate is not None else None
        return np.array([aggregate(v[k], alpha, None if on is None else on[k])[0] for k in self.index])


def fit_gate(model, models_dir, pid: str, log) -> tuple[TopicGate, dict]:
    from sklearn.linear_model import LogisticRegression

    pol = next(p for p in load_policies(models_dir) if p.id == pid)
    train = training_rows(models_dir)
    bank = [t for c in pol.claims() for t in (c["claim"], *c.get("counter_examples", ()), *c.get("mainstream", ()))]
    benign_train = benign_rows(models_dir, ("train",))
    on_topic = sorted({*bank, *(r["text"] for r in pol.split("train")),
                       *(r["text"] for r in public_rows(models_dir, pid, "train")),
                       *(r["text"] for r in benign_train if r.get("tag") == "climate_mainstream")})
    rng = np.random.default_rng(0)
    off = set()
    for task in ("toxicity", "sentiment", "jailbreak"):
        texts = sorted({r["text"] for r in train[task]})
        off |= set(rng.choice(texts, size=min(GATE_NEGATIVES_PER_TASK, len(texts)), replace=False))
    # the benign sources' train split (their dev split measures the decisions); mainstream climate is on topic
    off |= {r["text"] for r in benign_train if r.get("tag") != "climate_mainstream"}
    off -= set(on_topic)
    off = sorted(off)
    log(f"      topic gate {pid}: {len(on_topic)} on-topic texts vs {len(off)} ordinary ones")
    ps = PieceScores(model, on_topic + off, log)
    x = ps.outputs["text_embedding"].astype(np.float64)
    y = (ps.owner < len(on_topic)).astype(int)
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(x, y)
    w, b = clf.coef_[0].astype(np.float32), float(clf.intercept_[0])
    # threshold on the policy's positive tuning rows (label 1 of its dev split), per piece as at run time
    pos = [r["text"] for r in tuning_rows(models_dir)[pid] if int(r["label"]) == 1]
    pos_ps = PieceScores(model, pos, log)
    raw = TopicGate(w, b, 0.0)
    rel = np.array([raw.relevance(pos_ps.outputs["text_embedding"][k]).max() for k in pos_ps.index])
    threshold = float(np.quantile(rel, 1 - GATE_RECALL))
    gate = TopicGate(w, b, threshold)
    off_rel = np.array([gate.relevance(ps.outputs["text_embedding"][k]).max() for k in ps.index[len(on_topic):]])
    numbers = {"on_topic_texts": len(on_topic), "ordinary_texts": len(off), "threshold": round(threshold, 4),
               "positive_tuning_rows": len(pos), "passes_positive_tuning": round(float(np.mean(rel >= threshold)), 4),
               "passes_ordinary_training": round(float(np.mean(off_rel >= threshold)), 4)}
    return gate, numbers


def calibrate(model, models_dir, log: Callable[[str], None] = print) -> dict:
    """`suite.decisions` for the manifest, and what the choice rests on (`build.decision_choice`)."""
    benign = benign_rows(models_dir, ("dev",))
    if not benign:
        raise SystemExit("no benign tuning traffic in models/data/public/benign: run `convmon models data`")
    policies = [p.id for p in load_policies(models_dir)]
    gates, gate_numbers = {}, {}
    for pid in policies:
        gates[pid], gate_numbers[pid] = fit_gate(model, models_dir, pid, log)
    log(f"      benign tuning traffic: {len(benign)} turns")
    ps = PieceScores(model, [r["text"] for r in benign], log)
    buckets = np.array([bucket(r["text"]) for r in benign])
    user = np.array([r.get("role") in JAILBREAK_ROLES for r in benign])
    signals = [("toxicity", "toxicity", None, None, np.ones(len(benign), bool)),
               ("jailbreak", "jailbreak", None, None, user)]
    signals += [(pid, "policy", j, gates[pid], np.ones(len(benign), bool)) for j, pid in enumerate(policies)]
    alpha_out, thresholds, choice = {}, {}, {}
    for sig, output, col, gate, rows in signals:
        budget = BUDGET_PER_1000["policy" if col is not None else sig]
        trials = []
        for a in ALPHAS:
            s = ps.aggregate(output, a, col, gate)[rows]
            loose = threshold_at_budget(s, budget * LOOSE)
            b = buckets[rows]
            rate = {k: float(np.mean(s[b == k] >= loose)) if np.any(b == k) else 0.0 for k in ("short", "medium", "long")}
            ratio = rate["long"] / max(rate["short"], 1.0 / max(1, int(np.sum(b == "short"))))
            trials.append({"alpha": a, "rate_at_loose": {k: round(v, 4) for k, v in rate.items()},
                           "long_to_short": round(ratio, 2)})
        ok = [t for t in trials if t["long_to_short"] <= LONG_RATIO]
        pick = ok[0] if ok else min(trials, key=lambda t: t["long_to_short"])
        alpha_out[sig] = pick["alpha"]
        s = ps.aggregate(output, pick["alpha"], col, gate)[rows]
        thresholds[sig] = threshold_at_budget(s, budget)
        flagged = int(np.sum(s >= thresholds[sig]))
        choice[sig] = {"budget_per_1000": budget, "tuning_turns": int(rows.sum()), "flagged": flagged,
                       "alpha": pick["alpha"], "alpha_trials": trials, "threshold": thresholds[sig]}
        log(f"      {sig:<16} alpha {pick['alpha']:<4} threshold {thresholds[sig]:.4f} "
            f"({flagged} of {int(rows.sum())} benign tuning turns flagged; budget {budget}/1000)")
    decisions = {
        "languages": ["en"],
        "jailbreak_roles": list(JAILBREAK_ROLES),
        "length_alpha": alpha_out,
        "gates": {pid: {"weights": [round(float(v), 6) for v in g.weights], "bias": round(g.bias, 6),
                        "threshold": round(g.threshold, 6)} for pid, g in gates.items()},
        "budget_per_1000": dict(BUDGET_PER_1000),
    }
    return {"decisions": decisions, "thresholds": thresholds,
            "choice": {"signals": choice, "gates": gate_numbers, "benign_tuning_turns": len(benign)}}
