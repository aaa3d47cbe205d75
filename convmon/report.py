"""`convmon report`: one self-contained HTML page of what convmon saw, for users without Grafana.

Every chart and table runs the SQL of a Grafana panel (convmon/dashboards.py), with Grafana's
macros and variables expanded here (all apps, models, versions and roles; the time range of the
data), on the configured ClickHouse (embedded or server). Charts are Plotly figures; plotly.js is
inlined once, so the page works offline and can be mailed. Text in tables is HTML-escaped, and the
only chat text shown is the stored, redacted text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from . import dashboards

MAX_POINTS = 150  # time buckets per chart


@dataclass
class Section:
    title: str
    dashboard: str
    panel: str  # the Grafana panel whose SQL this section runs
    kind: str  # "lines" | "bars" | "drift" | "table"
    note: str = ""


SECTIONS = [
    Section("Turns per second, by app and model version", "overview", "Turns/s by app and model version", "lines"),
    Section("Mean toxicity by model version", "overview", "Mean toxicity by model version", "lines"),
    Section("Mean sentiment by model version", "overview", "Mean sentiment by model version", "lines"),
    Section("Embedding drift against its calibrated threshold", "drift",
            "Embedding drift: centroid distance vs calibrated threshold", "drift",
            "Dashed: each series' threshold. Vertical lines: a model version's first turns."),
    Section("Alerts over time, by kind", "conversations", "Alerts by kind", "bars"),
    Section("Recent alerts, with the evidence that decided each", "conversations", "Recent alerts", "table",
            "evidence: the redacted part of the turn that decided a single-turn alert."),
    Section("Turns the suite does not judge (language)", "overview",
            "Turns the suite does not judge (language), by app and model version", "table",
            "A language the suite was not trained on keeps its scores but gets no decision: no hit, no page."),
    Section("Conversations with abrupt sentiment shifts", "conversations", "Conversations with abrupt shifts", "table"),
    Section("Precision from labels, by signal, app and model version", "conversations",
            "Precision by signal, app and model version (labels)", "table",
            "Labels from on-call, end users and reviewers; precision with a Wilson 95% interval (`convmon precision`)."),
    Section("One conversation, turn by turn (redacted text)", "conversations", "Conversation turns (redacted text only)",
            "table", "The most recent conversation with a shift; ids are pseudonyms."),
]


def _panel_sql(dashboard: str, title: str) -> str:
    dash = dashboards.DASHBOARDS[dashboard]()
    for p in dash["panels"]:
        if p["title"] == title:
            return p["targets"][0]["rawSql"]
    for a in dash["annotations"]["list"]:
        if a["name"] == title:
            return a["target"]["rawSql"]
    raise KeyError(f"no panel {title!r} in dashboard {dashboard!r}")


class Expander:
    """Grafana's expansion of the panels' macros and variables: every value of each multi-value variable
    (what "All" selects), percent-encoded as Grafana's `percentencode` does; the report's time range."""

    def __init__(self, start: datetime, end: datetime, interval_s: int, variables: dict[str, "list[str] | str"]):
        self.start, self.end, self.interval_s, self.variables = start, end, interval_s, variables

    def __call__(self, sql: str) -> str:
        def var(m):
            v = self.variables[m[1]]
            return quote("{" + ",".join(v) + "}" if isinstance(v, list) else v, safe="")

        sql = re.sub(r"\$\{(\w+):percentencode\}", var, sql)
        frm, to = int(self.start.timestamp()), int(self.end.timestamp())
        sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})",
                     sql)
        sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                     lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {self.interval_s} second)", sql)
        sql = sql.replace("$__interval_s", str(self.interval_s))
        if "$" in sql:
            raise ValueError(f"unexpanded Grafana macro or variable in: {sql[:200]}")
        return sql


def time_range(client) -> tuple[datetime, datetime] | None:
    """From the first to the last thing stored (turns, windows, alerts, feedback labels: they come after the
    pages they judge); None when nothing is."""
    bounds = []
    for table, col, extra in (("turns", "ts", 0), ("window_stats", "window_start", 60), ("alerts", "ts", 0),
                              ("feedback", "ts", 0)):
        n, lo, hi = client.query(f"SELECT count(), min({col}), max({col}) FROM {table}").result_rows[0]
        if n:
            bounds += [lo, hi + timedelta(seconds=extra)]
    if not bounds:
        return None
    start, end = (b.replace(tzinfo=timezone.utc) if b.tzinfo is None else b for b in (min(bounds), max(bounds)))
    return start - timedelta(minutes=1), end + timedelta(minutes=1)


def _variables(client) -> dict:
    """What "All" selects for each multi-value variable: every value stored (the dashboards list those of
    window_stats; the report also takes turns and alerts, so that nothing stored is filtered out)."""
    cols = {"app": "app", "model": "model_name", "version": "model_version", "role": "role"}
    out = {}
    for var, col in cols.items():
        sql = " UNION DISTINCT ".join(f"SELECT DISTINCT {col} AS v FROM {t}" for t in ("turns", "window_stats", "alerts"))
        out[var] = sorted(str(r[0]) for r in client.query(sql).result_rows)
    assert set(out) == {v["name"] for v in dashboards.VARIABLES}, "a dashboard variable the report does not fill"
    return out


def _figure(section: Section, result, markers: list[tuple[datetime, str]]):
    import plotly.graph_objects as go

    cols, rows = list(result.column_names), result.result_rows
    fig = go.Figure()
    if section.kind == "bars":  # time, category, count
        for cat in sorted({r[1] for r in rows}):
            pts = [r for r in rows if r[1] == cat]
            fig.add_bar(x=[r[0] for r in pts], y=[r[2] for r in pts], name=str(cat))
        fig.update_layout(barmode="stack")
    elif "series" in cols:
        si = cols.index("series")
        values = [i for i in range(len(cols)) if i not in (0, si)]
        for name in sorted({r[si] for r in rows}):
            pts = [r for r in rows if r[si] == name]
            for i in values:
                threshold = section.kind == "drift" and cols[i].endswith("threshold")
                fig.add_scatter(x=[r[0] for r in pts], y=[r[i] for r in pts],
                                mode="lines+markers",  # a series of one bucket (a short demo) still shows
                                name=f"{name} {cols[i]}" if len(values) > 1 else str(name),
                                line={"dash": "dash"} if threshold else None)
    else:
        for i in range(1, len(cols)):
            fig.add_scatter(x=[r[0] for r in rows], y=[r[i] for r in rows], mode="lines+markers", name=cols[i])
    for when, text in markers:
        fig.add_vline(x=when.timestamp() * 1000, line={"dash": "dot", "width": 1, "color": "#888"})
        fig.add_annotation(x=when.timestamp() * 1000, y=1, yref="paper", text=text, showarrow=False,
                           textangle=-90, xanchor="right", yanchor="top", font={"size": 9, "color": "#555"})
    fig.update_layout(height=340, margin={"l": 50, "r": 20, "t": 10, "b": 40}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _table(result, limit: int = 50) -> str:
    cols, rows = result.column_names, result.result_rows[:limit]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(v) -> str:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:16px;margin:28px 0 4px}p.note{color:#666;font-size:12px;margin:0 0 6px}
table.data{border-collapse:collapse;font-size:12px;width:100%}table.data td,table.data th{border:1px solid #ddd;
padding:3px 6px;text-align:left;vertical-align:top}table.data th{background:#f4f4f4}.empty{color:#999}"""


def build(client, out: Path, now: datetime | None = None) -> dict:
    """Write the report to `out`; returns what it holds: {section title: rows}."""
    from plotly.offline import get_plotlyjs

    rng = time_range(client)
    now = now or datetime.now(timezone.utc)
    start, end = rng or (now - timedelta(hours=1), now)
    interval = max(60, int((end - start).total_seconds() / MAX_POINTS) // 60 * 60)
    variables = _variables(client)
    shifts = client.query(Expander(start, end, interval, dict(variables, conversation=""))(
        _panel_sql("conversations", "Conversations with abrupt shifts"))).result_rows
    variables["conversation"] = str(shifts[0][1]) if shifts else ""
    expand = Expander(start, end, interval, variables)
    version_marks = [(r[0].replace(tzinfo=timezone.utc) if r[0].tzinfo is None else r[0], str(r[1])) for r in
                     client.query(expand(_panel_sql("drift", "Model version changes"))).result_rows]
    parts, counts = [], {}
    for i, sec in enumerate(SECTIONS):
        result = client.query(expand(_panel_sql(sec.dashboard, sec.panel)))
        counts[sec.title] = len(result.result_rows)
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.note:
            parts.append(f'<p class="note">{html.escape(sec.note)}</p>')
        if not result.result_rows:
            parts.append('<p class="empty">no data in this range</p>')
        elif sec.kind == "table":
            parts.append(_table(result))
        else:
            fig = _figure(sec, result, version_marks if sec.kind == "drift" else [])
            parts.append(f'<div class="chart" data-section="{i}">'
                         + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{i}") + "</div>")
    title = "convmon report"
    span = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC, {interval // 60}-minute buckets"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
            f"<script>{get_plotlyjs()}</script></head><body><h1>{title}</h1>"
            f"<p class='note'>{html.escape(span)}. Generated {now:%Y-%m-%d %H:%M} UTC by `convmon report` from the "
            f"SQL of the Grafana panels.</p>{''.join(parts)}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return counts
