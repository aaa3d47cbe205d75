"""Scoring without Kafka (`convmon score`): the same scorers and field names as the worker."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from .pii import scan
from .suite import SuiteModel


class OfflineScorer:
    def __init__(self, model: Optional[SuiteModel] = None, threads: int = 1):
        self.model = model or SuiteModel(threads=threads)

    def score(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each record (with at least `text`) plus the score fields; other fields pass through."""
        fields, emb = self.model.fields([r["text"] for r in records])
        out = []
        for rec, f, e in zip(records, fields, emb):
            pii = scan(rec["text"])
            out.append({**rec, **f, "pii": pii.types, "embedding_norm": round(float(np.linalg.norm(e)), 4)})
        return out

    def verdicts(self, row: dict[str, Any]) -> list[str]:
        """One line per signal for people: the score, the suite's threshold and the decision."""
        th, pth = self.model.thresholds, self.model.policy_thresholds
        lines = []
        for name, what in (("toxicity", "toxic"), ("jailbreak", "jailbreak / prompt-injection attempt")):
            v, t = row[name], th[name]
            lines.append(f"{name:<22} {v:6.3f}  {'≥' if v >= t else '<'} {t:.3f}  → "
                         + (what.upper() if v >= t else f"not {what.split(' /')[0]}"))
        lines.append(f"{'sentiment':<22} {row['sentiment']:+6.3f}  (−1 … +1)  → {row['sentiment_label']}")
        for pid, v in row["policy_scores"].items():
            t = pth[pid]
            lines.append(f"{'policy ' + pid:<22} {v:6.3f}  {'≥' if v >= t else '<'} {t:.3f}  → "
                         + ("POLICY HIT" if pid in row["policy_hits"] else "no hit"))
        lines.append(f"{'pii':<22} " + (", ".join(row["pii"]).upper() + " (stored redacted)" if row["pii"] else "none"))
        return lines

    def score_stream(self, records: Iterable[dict[str, Any]], batch: int = 256):
        buf = []
        for r in records:
            buf.append(r)
            if len(buf) >= batch:
                yield from self.score(buf)
                buf = []
        if buf:
            yield from self.score(buf)
