"""Scoring without Kafka (`convmon score`): the worker's own scoring pipeline (PII, then the model suite),
on text instead of chat turns. Each input object comes back unchanged, with the score fields under one key,
`convmon`, so that an input field that shares a score's name (a label called `toxicity`) is never touched."""

from __future__ import annotations

import uuid
from typing import Any, Iterable, Optional

from ..contract import ChatTurn, ModelRef
from .pii import PiiScorer
from .pipeline import ScoringPipeline
from .suite import SuiteScorer

KEY = "convmon"  # where the scores go in each output object


ROLES = ("user", "assistant", "system", "tool")


def turn_of(text: str, role: str = "user") -> ChatTurn:
    """A chat turn carrying the text and the speaker's role (decisions depend on it: jailbreak is decided on
    user and tool turns only). Not validated against the contract's size and identifier rules, which exist for
    the stream; any text can be scored here."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return ChatTurn.model_construct(event_id=str(uuid.uuid4()), conversation_id="convmon-score", turn_index=0,
                                    role=role, text=text, ts="1970-01-01T00:00:00Z", app="convmon-score",
                                    model=ModelRef.model_construct(provider="-", name="-", version="-"))


class OfflineScorer:
    def __init__(self, suite: Optional[SuiteScorer] = None, threads: int = 1):
        self.suite = suite or SuiteScorer(threads=threads)
        self.model = self.suite.model
        self.pipeline = ScoringPipeline([PiiScorer(), self.suite])

    def score(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each record (with at least `text`) as it is, plus `convmon`: the score record's fields."""
        scored = self.pipeline.score([turn_of(r["text"], r.get("role") or "user") for r in records])
        return [{**rec, KEY: {**s.scores, "scorer_version": s.scorer_version}} for rec, s in zip(records, scored)]

    def verdicts(self, row: dict[str, Any]) -> list[str]:
        """One line per signal for people: the score, the suite's threshold and the decision."""
        th, pth, s = self.model.thresholds, self.model.policy_thresholds, row[KEY]
        lines = []
        undecided = ("not judged: language " + (s["language"] or "?") + " is not one the suite was trained on"
                     if s.get("language_supported") is False else "not decided on this role (user and tool turns only)")
        for name, what in (("toxicity", "toxic"), ("jailbreak", "jailbreak / prompt-injection attempt")):
            v, t, hit = s[name], th[name], s[f"{name}_hit"]  # the scorer's decision, as the worker makes it
            lines.append(f"{name:<22} {v:6.3f}  {'≥' if hit else '<'} {t:.3f}  → "
                         + (undecided if hit is None else what.upper() if hit else f"not {what.split(' /')[0]}"))
        lines.append(f"{'sentiment':<22} {s['sentiment']:+6.3f}  (−1 … +1)  → {s['sentiment_label']}")
        for pid, v in s["policy_scores"].items():
            t = pth[pid]
            lines.append(f"{'policy ' + pid:<22} {v:6.3f}  {'≥' if v >= t else '<'} {t:.3f}  → "
                         + ("POLICY HIT" if pid in s["policy_hits"] else "no hit"))
        lines.append(f"{'pii':<22} " + (", ".join(s["pii"]).upper() + " (stored redacted)" if s["pii"] else "none"))
        for e in s.get("evidence") or ():
            lines.append(f"{'evidence ' + e['signal']:<22} {e['score']:6.3f}  chars {e['start']}–{e['end']}: "
                         f"\"{e['excerpt']}\"")
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
