"""Metrics in plain numpy (the runtime environment has no scikit-learn)."""

from __future__ import annotations

import numpy as np


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney U) formula, ties averaged."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_report(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(score) >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    a = auc(y, score)
    return {
        "n": int(len(y)),
        "auc": None if np.isnan(a) else round(a, 4),  # None: one class only
        "threshold": round(float(threshold), 4),
        "f1": round(f1, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "fpr": round(fp / (fp + tn), 4) if fp + tn else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def best_f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The threshold that maximises F1 (used on the tuning split, never on an evaluation set)."""
    candidates = np.unique(np.round(score, 4))
    best, best_t = -1.0, 0.5
    for t in candidates:
        f1 = binary_report(y, score, t)["f1"]
        if f1 > best:
            best, best_t = f1, float(t)
    return best_t


def multiclass_report(y: list[str], pred: list[str], labels: tuple[str, ...]) -> dict:
    idx = {l: i for i, l in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for a, b in zip(y, pred):
        cm[idx[a], idx[b]] += 1
    f1s = {}
    for l, i in idx.items():
        tp = cm[i, i]
        p = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        r = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1s[l] = round(2 * p * r / (p + r), 4) if p + r else 0.0
    return {
        "n": int(len(y)),
        "macro_f1": round(float(np.mean(list(f1s.values()))), 4),
        "accuracy": round(float(np.trace(cm) / max(cm.sum(), 1)), 4),
        "f1_per_class": f1s,
        "confusion": {"labels": list(labels), "matrix": cm.tolist()},
    }
