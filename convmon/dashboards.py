r"""Grafana dashboards as code: `python -m convmon.dashboards` writes infra/grafana/dashboards/*.json.

Every panel is raw SQL for the official ClickHouse plugin (grafana-clickhouse-datasource) over
the convmon schema; tests/unit/test_dashboards.py expands Grafana's macros and template variables
the way Grafana does and runs every query against embedded ClickHouse with demo data.

Template variables never reach SQL as quoted strings. Grafana's `singlequote` and `sqlstring`
formats escape `'` but not `\`, which ClickHouse reads as an escape, so a value such as
`\' OR 1=1 --` ends the literal and injects SQL. Every variable is interpolated percent-encoded
(`${var:percentencode}`: only letters, digits and `%-_.~` reach the query) and decoded by
ClickHouse: see `values()` and `value()`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .feedback.precision import precision_sql

DS = {"type": "grafana-clickhouse-datasource", "uid": "convmon-clickhouse"}


def values(var: str) -> str:
    """SQL array of a multi-value variable's values. Grafana percent-encodes a selection as `{a,b}`;
    contract identifiers contain no `,{}` (convmon/contract.py IDENTIFIER), so the split is exact."""
    return f"splitByChar(',', trim(BOTH '{{}}' FROM decodeURLComponent('${{{var}:percentencode}}')))"


def value(var: str) -> str:
    """SQL string of a single-value (textbox) variable."""
    return f"decodeURLComponent('${{{var}:percentencode}}')"


def one_of(column: str, var: str) -> str:
    return f"has({values(var)}, {column})"


FILTER = " AND ".join(one_of(c, v) for c, v in (("app", "app"), ("model_name", "model"), ("model_version", "version"),
                                                 ("role", "role")))


def _var(name: str, label: str, sql: str, multi: bool = True) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS, "query": sql,
            "definition": sql, "refresh": 2, "multi": multi, "includeAll": multi, "current": {},
            "sort": 1}


VARIABLES = [
    _var("app", "App", "SELECT DISTINCT app FROM window_stats ORDER BY app"),
    _var("model", "Model", "SELECT DISTINCT model_name FROM window_stats WHERE " + one_of("app", "app") + " "
                           "ORDER BY model_name"),
    _var("version", "Version", "SELECT DISTINCT model_version FROM window_stats WHERE " + one_of("app", "app") + " "
                               "AND " + one_of("model_name", "model") + " ORDER BY model_version"),
    _var("role", "Role", "SELECT DISTINCT role FROM window_stats ORDER BY role"),
]


def _target(sql: str, fmt: int) -> dict:
    # format: 0 = table, 1 = time series (the plugin's enum)
    return {"refId": "A", "datasource": DS, "editorType": "sql", "format": fmt, "queryType": "sql",
            "rawSql": " ".join(sql.split())}


def _panel(kind: str, title: str, sql: str, unit: str = "short", w: int = 12, h: int = 8,
           thresholds: tuple = (), description: str = "") -> dict:
    fmt = 1 if kind in ("timeseries", "barchart") else 0
    steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds]
    return {"type": kind, "title": title, "description": description, "datasource": DS,
            "targets": [_target(sql, fmt)], "gridPos": {"w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {}}


def _dashboard(uid: str, title: str, panels: list[dict], annotations: list[dict] = (), extra_vars=()) -> dict:
    x = y = 0
    for i, p in enumerate(panels, 1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + h
        p["gridPos"].update(x=x, y=y)
        x += w
    return {
        "uid": uid, "title": title, "tags": ["convmon"], "timezone": "utc", "schemaVersion": 39, "version": 1,
        "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [*VARIABLES, *extra_vars]},
        "annotations": {"list": list(annotations)}, "panels": panels,
    }


def _annotation(name: str, sql: str, color: str) -> dict:
    return {"name": name, "datasource": DS, "enable": True, "iconColor": color, "target": _target(sql, 0)}


def overview() -> dict:
    return _dashboard("convmon-overview", "convmon — Overview", [
        _panel("timeseries", "Turns/s by app and model version",
               f"SELECT $__timeInterval(window_start) AS time, concat(app, ' ', model_name, ' ', model_version) AS series, "
               f"sum(turns) / $__interval_s AS turns_per_s FROM window_stats FINAL "
               f"WHERE $__timeFilter(window_start) AND {FILTER} GROUP BY time, series ORDER BY time", unit="reqps"),
        _panel("timeseries", "Toxicity (mean, p95)",
               f"SELECT $__timeInterval(window_start) AS time, sum(toxicity_mean * turns) / sum(turns) AS mean, "
               f"max(toxicity_p95) AS p95 FROM window_stats FINAL WHERE $__timeFilter(window_start) AND {FILTER} "
               f"GROUP BY time ORDER BY time", unit="percentunit", thresholds=((0.5, "orange"), (0.9, "red"))),
        _panel("timeseries", "Mean toxicity by model version",
               f"SELECT $__timeInterval(window_start) AS time, model_version AS series, "
               f"sum(toxicity_mean * turns) / sum(turns) AS toxicity FROM window_stats FINAL "
               f"WHERE $__timeFilter(window_start) AND {FILTER} GROUP BY time, series ORDER BY time", unit="percentunit"),
        _panel("timeseries", "Mean sentiment by model version",
               f"SELECT $__timeInterval(window_start) AS time, model_version AS series, "
               f"sum(sentiment_mean * turns) / sum(turns) AS sentiment FROM window_stats FINAL "
               f"WHERE $__timeFilter(window_start) AND {FILTER} GROUP BY time, series ORDER BY time", unit="none"),
        _panel("barchart", "Jailbreak attempts",
               f"SELECT $__timeInterval(window_start) AS time, sum(jailbreak_hits) AS attempts FROM window_stats FINAL "
               f"WHERE $__timeFilter(window_start) AND {FILTER} GROUP BY time ORDER BY time",
               description="Jailbreak and prompt injection are decided on user and tool turns only (where an attack "
                           "arrives); assistant replies keep a score but never count here, in rates or in pages."),
        _panel("timeseries", "Policy hits by policy",
               f"SELECT $__timeInterval(ts) AS time, arrayJoin(policy_hits) AS policy, count() AS hits FROM turns FINAL "
               f"WHERE $__timeFilter(ts) AND {FILTER} GROUP BY time, policy ORDER BY time"),
        _panel("table", "Turns the suite does not judge (language), by app and model version",
               f"SELECT app, model_name, model_version, sum(turns) AS turns, "
               f"sum(unsupported_language_turns) AS not_judged, round(not_judged / turns, 4) AS share_not_judged "
               f"FROM window_stats FINAL WHERE $__timeFilter(window_start) AND {FILTER} "
               f"GROUP BY app, model_name, model_version ORDER BY share_not_judged DESC, turns DESC", unit="none",
               description="Turns in a language the model suite was not trained on (English only today) keep their "
                           "scores but get no decision: no hit, no page. This is how much of your traffic convmon "
                           "does not judge."),
        _panel("timeseries", "PII detections by type",
               f"SELECT $__timeInterval(ts) AS time, arrayJoin(pii) AS type, count() AS turns FROM turns FINAL "
               f"WHERE $__timeFilter(ts) AND {FILTER} GROUP BY time, type ORDER BY time"),
        _panel("timeseries", "Dead-lettered records/s by reason",
               "SELECT $__timeInterval(ts) AS time, reason, count() / $__interval_s AS per_s FROM dead_letters FINAL "
               "WHERE $__timeFilter(ts) GROUP BY time, reason ORDER BY time", unit="reqps",
               description="Records that failed the chat-turn contract (reasons: schemas/dlq.md)."),
        _panel("timeseries", "Scoring latency (event → scored), p50 / p95",
               f"SELECT $__timeInterval(scored_at) AS time, "
               f"quantile(0.5)(dateDiff('millisecond', ts, scored_at)) / 1000 AS p50, "
               f"quantile(0.95)(dateDiff('millisecond', ts, scored_at)) / 1000 AS p95 FROM turns FINAL "
               f"WHERE $__timeFilter(scored_at) AND {FILTER} GROUP BY time ORDER BY time", unit="s",
               thresholds=((1, "orange"), (5, "red"))),
    ])


def drift() -> dict:
    return _dashboard("convmon-drift", "convmon — Drift", [
        _panel("timeseries", "Embedding drift: centroid distance vs calibrated threshold",
               f"SELECT ts AS time, concat(model_version, ' ', role) AS series, centroid_distance, centroid_threshold "
               f"FROM drift_reports FINAL WHERE $__timeFilter(ts) AND kind = 'window' AND {FILTER} ORDER BY time",
               unit="none", w=24),
        _panel("timeseries", "Embedding drift: MMD² vs calibrated threshold",
               f"SELECT ts AS time, concat(model_version, ' ', role) AS series, mmd, mmd_threshold "
               f"FROM drift_reports FINAL WHERE $__timeFilter(ts) AND kind = 'window' AND {FILTER} ORDER BY time"),
        _panel("timeseries", "Sentiment by model version (sentiment drift)",
               f"SELECT $__timeInterval(window_start) AS time, model_version AS series, "
               f"sum(sentiment_mean * turns) / sum(turns) AS sentiment FROM window_stats FINAL "
               f"WHERE $__timeFilter(window_start) AND {FILTER} GROUP BY time, series ORDER BY time"),
        _panel("table", "Version-change reports (old vs new version)",
               "SELECT ts, app, model_name, role, reference_version AS old_version, model_version AS new_version, "
               "round(centroid_distance, 4) AS centroid_distance, round(centroid_threshold, 4) AS centroid_threshold, "
               "round(mmd, 4) AS mmd, round(mmd_threshold, 4) AS mmd_threshold, drifted, "
               "JSONExtractRaw(details, 'signals') AS signal_differences FROM drift_reports FINAL "
               f"WHERE kind = 'version_change' AND $__timeFilter(ts) AND {FILTER} ORDER BY ts DESC", w=24),
        _panel("table", "Signal-rate change points",
               "SELECT ts, kind, status, app, model_name, model_version, summary FROM alerts FINAL "
               "WHERE kind IN ('toxicity_rate', 'jailbreak_rate', 'policy_rate', 'sentiment_drift', 'embedding_drift') "
               f"AND $__timeFilter(ts) AND {FILTER} ORDER BY ts DESC LIMIT 200", w=24),
    ], annotations=[
        _annotation("Model version changes",
                    "SELECT min(window_start) AS time, concat('new version ', model_name, ' ', model_version, "
                    "' (', app, ')') AS text FROM window_stats FINAL WHERE " + one_of("app", "app") + " "
                    "GROUP BY app, model_name, model_version HAVING $__timeFilter(time)", "blue"),
        _annotation("Alerts that paged",
                    "SELECT ts AS time, concat(kind, ': ', summary) AS text FROM alerts FINAL "
                    "WHERE delivery = 'notified' AND $__timeFilter(ts)", "red"),
    ])


def conversations() -> dict:
    conv_var = {"name": "conversation", "label": "Conversation id", "type": "textbox", "query": "",
                "current": {"text": "", "value": ""}}
    return _dashboard("convmon-conversations", "convmon — Conversations & alerts", [
        _panel("barchart", "Alerts by kind",
               "SELECT $__timeInterval(ts) AS time, kind, count() AS alerts FROM alerts FINAL "
               "WHERE $__timeFilter(ts) AND " + one_of("app", "app") + " GROUP BY time, kind ORDER BY time"),
        _panel("stat", "Pages (notified) in range",
               "SELECT count() AS pages FROM alerts FINAL WHERE delivery = 'notified' AND $__timeFilter(ts) "
               "AND " + one_of("app", "app"), w=6, thresholds=((1, "orange"), (10, "red"))),
        _panel("stat", "Critical alerts in range",
               "SELECT count() AS critical FROM alerts FINAL WHERE severity = 'critical' AND $__timeFilter(ts) "
               "AND " + one_of("app", "app"), w=6, thresholds=((1, "red"),)),
        _panel("table", "Recent alerts",
               "SELECT ts, kind, severity, delivery, app, model_version, conversation_id, turn_index, summary, "
               "JSONExtractString(details, 'evidence', 'excerpt') AS evidence "
               "FROM alerts FINAL WHERE $__timeFilter(ts) AND " + one_of("app", "app") + " ORDER BY ts DESC LIMIT 200",
               w=24, description="evidence: the redacted part of the turn that decided the alert (single-turn alerts)."),
        _panel("table", "Conversations with abrupt shifts",
               "SELECT max(ts) AS last_shift, conversation_id, app, any(turn_index) AS shift_turn, any(summary) AS summary "
               "FROM alerts FINAL WHERE kind = 'sentiment_shift' AND $__timeFilter(ts) AND " + one_of("app", "app") + " "
               "GROUP BY conversation_id, app ORDER BY last_shift DESC LIMIT 100", w=24,
               description="Conversation ids are stored as pseudonyms: type one from the table above, or run "
                           "`convmon pseudonym <conversation id>`, into the variable to see its turns."),
        _panel("table", "Conversation turns (redacted text only)",
               "SELECT turn_index, role, ts, round(toxicity, 3) AS toxicity, round(sentiment, 3) AS sentiment, "
               "sentiment_label, round(jailbreak, 3) AS jailbreak, policy_hits, pii, language, "
               "arrayStringConcat(arrayMap(e -> concat(tupleElement(e, 'signal'), ': ', tupleElement(e, 'excerpt')), "
               "evidence), ' | ') AS evidence, text_redacted FROM turns FINAL "
               "WHERE conversation_id = " + value("conversation") + " ORDER BY turn_index", w=24, h=12),
        _panel("table", "Precision by signal, app and model version (labels)",
               precision_sql("$__timeFilter(labelled_at) AND " + one_of("app", "app")), w=24,
               description="From chat.feedback labels (convmon alerts label, end-user reports, reviewers), the latest "
                           "per alert or turn: precision = confirmed / (confirmed + false_alarm) with a Wilson 95% "
                           "interval; missed = turns convmon did not flag. `convmon precision` prints the same."),
    ], extra_vars=[conv_var])


DASHBOARDS = {"overview": overview, "drift": drift, "conversations": conversations}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in DASHBOARDS.items():
        p = folder / f"convmon-{name}.json"
        p.write_text(json.dumps(make(), indent=2) + "\n")
        out.append(p)
    return out


if __name__ == "__main__":  # pragma: no cover
    for p in write(Path(__file__).resolve().parents[1] / "infra" / "grafana" / "dashboards"):
        print(p)
