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

    def score_stream(self, records: Iterable[dict[str, Any]], batch: int = 256):
        buf = []
        for r in records:
            buf.append(r)
            if len(buf) >= batch:
                yield from self.score(buf)
                buf = []
        if buf:
            yield from self.score(buf)
