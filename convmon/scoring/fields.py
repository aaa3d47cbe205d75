"""One home per score: each scorer declares the fields it adds to the score record.

A `ScoreField` names the field, its JSON Schema (the chat.scores contract), its value when the scorer
is off, its ClickHouse column type (the `turns` table), and whether it is the scorer's hit decision. Derived from the declarations, so they
cannot disagree: the pipeline's defaults (scoring/pipeline.py), the score columns of a `turns` row
(store/turns.py) and the score part of schemas/score_event.schema.json (written by
`python -m convmon.scoring.fields`, checked by tests/unit/test_wire.py), and a test checks the column
types against the migrated table. Adding a scorer: its file with FIELDS, one line in
scoring/registry.py SCORERS, and a migration adding its columns.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass(frozen=True)
class ScoreField:
    name: str
    schema: dict  # JSON Schema of the value on chat.scores
    default: Any  # when no scorer provides it (e.g. the model suite is off)
    column: Optional[str]  # ClickHouse type in `turns`; None: not stored
    required: bool = True  # always present on chat.scores (False: only when set, e.g. text_raw)
    description: str = ""
    # True: this field is the scorer's yes/no decision on the turn (truthy = hit; None = not scored). Signals,
    # rates, minute windows and alerts read it instead of re-applying a threshold (alerting/rules.py says
    # where a rule may set its own).
    hit: bool = False


def declared() -> list[ScoreField]:
    """Every score field, in the order of the registered scorers (scoring/registry.py)."""
    from .registry import SCORERS

    out: list[ScoreField] = []
    for cls in SCORERS:
        out += cls.FIELDS
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise ValueError(f"two scorers declare the same score field: {names}")
    return out


def defaults() -> dict[str, Any]:
    return {f.name: (list(f.default) if isinstance(f.default, list) else
                     dict(f.default) if isinstance(f.default, dict) else f.default) for f in declared()}


# The score record's other fields: the turn it scores and which scorers scored it.
_TURN_PART = {
    "event_id": {"type": "string", "format": "uuid"},
    "conversation_id": {"type": "string", "description": "pseudonymised (privacy.pseudonym_key)"},
    "turn_index": {"type": "integer", "minimum": 0},
    "role": {"enum": ["user", "assistant", "system", "tool"]},
    "ts": {"type": "string", "format": "date-time"},
    "app": {"type": "string"},
    "model": {
        "type": "object",
        "required": ["provider", "name", "version"],
        "properties": {"provider": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "string"}},
    },
    "prompt": {"type": "object", "properties": {"template_id": {"type": "string"}, "version": {"type": "string"}}},
    "user_ref": {"type": "string", "description": "pseudonymised (privacy.pseudonym_key)"},
    "scored_at": {"type": "string", "format": "date-time"},
    "scorer_version": {"type": "string", "description": "e.g. pii-2+suite-<sha>: which scorers and which model build"},
}
_TURN_REQUIRED = ["event_id", "conversation_id", "turn_index", "role", "ts", "app", "model", "scored_at",
                  "scorer_version"]


def score_event_schema() -> dict:
    fields = declared()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://convmon.dev/schemas/score_event.schema.json",
        "title": "ScoreEvent",
        "description": "One scored chat turn, published by the convmon worker on chat.scores (key: conversation_id). "
                       "The same field names are the columns of the ClickHouse table `turns` and, under `convmon`, "
                       "the output of `convmon score --json`. Generated from the scorers' declarations "
                       "(python -m convmon.scoring.fields).",
        "type": "object",
        "required": _TURN_REQUIRED + [f.name for f in fields if f.required],
        "properties": {**_TURN_PART,
                       **{f.name: {**f.schema, **({"description": f.description} if f.description else {})}
                          for f in fields}},
    }


def render() -> str:
    return json.dumps(score_event_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m convmon.scoring.fields [PATH]: (re)write the score-event schema
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("schemas/score_event.schema.json")
    target.write_text(render())
    print(f"wrote {target}")
