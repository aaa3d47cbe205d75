"""`convmon feedback export`: labelled turns as JSONL, for training. Only what is stored: the redacted text,
the signal and verdict (the latest label per turn and signal), the scores and the suite that gave them."""

from __future__ import annotations

import json
from typing import IO

SQL = (
    "SELECT event_id, signal, argMax(verdict, ts) AS verdict, any(app) AS app, any(model_name) AS model_name, "
    "any(model_version) AS model_version, any(role) AS role, any(text_redacted) AS text_redacted, "
    "any(toxicity) AS toxicity, any(sentiment) AS sentiment, any(jailbreak) AS jailbreak, "
    "any(policy_scores) AS policy_scores, any(scorer_version) AS scorer_version, max(ts) AS labelled_at "
    "FROM (SELECT * FROM feedback_labels WHERE event_id IS NOT NULL AND text_redacted IS NOT NULL "
    "AND ts >= now64(3) - toIntervalSecond({since:UInt64}) AND ({app:String} = '' OR app = {app:String})) "
    "GROUP BY event_id, signal ORDER BY labelled_at"
)


def export(client, out: IO[str], since_s: float, app: str = "") -> int:
    """Write one JSON object per labelled turn and signal; returns how many."""
    result = client.query(SQL, parameters={"since": int(since_s), "app": app})
    n = 0
    for row in result.result_rows:
        d = dict(zip(result.column_names, row))
        d["event_id"], d["labelled_at"] = str(d["event_id"]), d["labelled_at"].isoformat()
        d["policy_scores"] = {k: round(float(v), 4) for k, v in (d["policy_scores"] or {}).items()}
        for k in ("toxicity", "sentiment", "jailbreak"):
            d[k] = None if d[k] is None else round(float(d[k]), 4)
        out.write(json.dumps(d, ensure_ascii=False) + "\n")
        n += 1
    return n
