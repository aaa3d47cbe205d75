import dataclasses
"""Every Grafana panel's SQL, expanded as Grafana would, runs on the real schema with demo data.

Demo data goes through convmon's own code: the sample conversations are scored by the real
model suite and stored by TurnStore; alerts come from the rules, the incident book and the
shift detector; window_stats, drift_reports (including a version-change report) and
dead_letters come from the model-state code. A new panel is covered automatically.
"""

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from convmon.state.model_state import ModelState
from convmon.wire import Signal
from convmon.alerting.incidents import IncidentBook
from convmon.alerting.rules import RuleSet, turn_alerts
from convmon.batch import BatchProcessor, RawRecord
from convmon.ingest import TurnDecoder
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.scoring.suite import SuiteScorer
from convmon.state.drift import DriftMonitor
from convmon.state.dynamics import ShiftDetector
from convmon.state.rates import RateMonitor
from convmon.state.windows import MinuteWindows
from convmon.store.alerts import AlertRecord, AlertStore
from convmon.store.drift import baseline_row, report_row
from convmon.store.migrate import migrate
from convmon.store.tables import BaselineRow, DeadLetterRow, DriftReportRow, FeedbackRow, RowStore, WindowRow
from convmon.store.turns import TurnStore


def LATER() -> float:
    """The tests' wall clock: after every event time they use (the watermark is capped near the wall clock)."""
    return 2_000_000_000.0

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "infra/grafana/dashboards").glob("*.json"))
NOW = datetime.now(timezone.utc).replace(microsecond=0)
FROM, TO = NOW - timedelta(hours=6), NOW + timedelta(hours=3)  # rows written "now" land inside, however late the test runs
INTERVAL_S = 60


@pytest.fixture(scope="module")
def demo(chdb_path):
    from convmon.store.clickhouse import connect
    from convmon.config import Settings

    settings = Settings(clickhouse_url=f"chdb://{chdb_path}", clickhouse={"database": "dashboards_demo"})
    client = connect(settings.clickhouse)
    migrate(client)
    rules = RuleSet.load()
    suite = SuiteScorer()
    processor = BatchProcessor(TurnDecoder(), ScoringPipeline([PiiScorer(), suite]))

    # sample conversations, spread over the last two hours, through the real decoder and scorers
    lines = [json.loads(l) for l in (ROOT / "models/data/conversations/sample.jsonl").read_text().splitlines()]
    records = []
    for i, t in enumerate(lines):
        t = dict(t, event_id=str(uuid.uuid4()),
                 ts=(NOW - timedelta(seconds=7200 - i * 20)).isoformat().replace("+00:00", "Z"))
        records.append(RawRecord(json.dumps(t).encode(), t["conversation_id"].encode(), "chat.turns", 0, i))
    for j, text in enumerate(["Global warming is a hoax; the climate has always changed and CO2 is harmless plant food.",
                              "Honestly, the warming is mostly the sun. CO2 hardly matters and the models are always wrong.",
                              "There is no real warming trend, scientists adjusted the temperature data to invent it."]):
        t = dict(lines[1], event_id=str(uuid.uuid4()), conversation_id=f"demo-climate-{j}", turn_index=1,
                 role="assistant", text=text, ts=(NOW - timedelta(minutes=30 - j)).isoformat().replace("+00:00", "Z"))
        records.append(RawRecord(json.dumps(t).encode(), t["conversation_id"].encode(), "chat.turns", 0, 5000 + j))
    records.append(RawRecord(b"{broken", None, "chat.turns", 0, 10_000))
    result = processor.process(records)
    # The shipped climate policy sits at threshold 1.0 (its budget; README, Model suite) and may flag none of
    # these: one contrarian turn is marked a hit by hand so that the policy panels have something to show.
    climate = next(s for s in result.scored if s.turn.conversation_id == "demo-climate-0")
    climate.scores["policy_hits"] = ["climate_science"]
    TurnStore(client).write(result.scored)
    RowStore(client, DeadLetterRow).write([d.row() for d in result.dead])

    # alerts: single-turn candidates (low thresholds so the demo has some), shifts, incidents
    thresholds = {"toxicity": 0.3, "jailbreak": 0.3}
    alerts = turn_alerts(RuleSet({k: r.__class__(**{**r.__dict__, "threshold": None}) for k, r in rules.rules.items()}),
                         result.scored, thresholds, suite.model.policy_thresholds)
    det, states = ShiftDetector(), {}
    for s in result.scored:
        e = s.event()
        states[e["conversation_id"]], shift = det.update(states.get(e["conversation_id"]), e)
        if shift:
            alerts.append(rules.make_alert("sentiment_shift", {"app": e["app"], "model_name": e["model"]["name"],
                                           "model_version": e["model"]["version"], "role": shift.role,
                                           "conversation_id": shift.conversation_id, "turn_index": shift.turn_index,
                                           "ts": s.turn.timestamp}, "shift", shift.to_dict(), str(shift.turn_index)))
    # per-model-version state: windows from the scored turns, drift from a scripted version switch
    state = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(grace_s=0, clock=LATER), rules)
    out = state.process([Signal.from_scored(s) for s in result.scored])
    windows, reports, pinned = list(out["windows"]), list(out["reports"]), list(out["pinned"])
    alerts += out["alerts"]
    rng = np.random.default_rng(0)
    styles = rng.normal(size=(2, 384))
    for i in range(900):
        v = styles[0 if i < 500 else 1] + 0.9 * rng.normal(size=384)
        version = "2024-07-18" if i < 500 else "2025-01-01"
        m = dataclasses.replace(Signal.from_scored(result.scored[0]),
                                key=("support-bot", "gpt-4o-mini", version, "assistant"), event_id=f"synthetic-{i}",
                                ts=(NOW - timedelta(seconds=5400 - i * 5)).timestamp(),
                                embedding=(v / np.linalg.norm(v)).astype(np.float16))
        o = state.process([m])
        windows += o["windows"]
        reports += o["reports"]
        pinned += o["pinned"]
        alerts += o["alerts"]
    windows += state.windows.close(now=TO.timestamp() + 3600)
    book, incidents, rows = IncidentBook(rules), {}, []
    for a in alerts:
        incidents[a.dedup_key], d = book.offer(incidents.get(a.dedup_key), a, now=a.ts.timestamp())
        rows.append(AlertRecord(a, d.delivery))
    AlertStore(client).write(rows)
    # labels: on-call on some alerts, an end user on a turn, a reported miss (the precision panel)
    labelled = [a for a in alerts if a.kind in ("toxic_turn", "policy_violation")][:4]
    feedback = [FeedbackRow(uuid.uuid4(), NOW - timedelta(minutes=5), None, uuid.UUID(a.alert_id), "",
                            "toxicity" if a.kind == "toxic_turn" else f"policy:{a.details['signal']}",
                            "confirmed" if i % 2 else "false_alarm", "oncall", "", "", 0, i)
                for i, a in enumerate(labelled)]
    feedback += [FeedbackRow(uuid.uuid4(), NOW - timedelta(minutes=4), uuid.UUID(result.scored[j].turn.event_id), None,
                             "", "toxicity", verdict, "end_user", "", "", 0, 100 + j)
                 for j, verdict in ((0, "missed"), (1, "confirmed"))]
    assert labelled
    RowStore(client, FeedbackRow).write(feedback)

    RowStore(client, WindowRow).write(windows)
    RowStore(client, DriftReportRow).write([report_row(r, n) for r, n in reports])
    RowStore(client, BaselineRow).write([baseline_row(r, "first_n") for r in pinned])
    assert any(r.kind == "version_change" for r, _ in reports)
    shift_conv = next((a.conversation_id for a in alerts if a.kind == "sentiment_shift"), lines[0]["conversation_id"])
    return client, shift_conv


def grafana_format(fmt: str, values: "list[str] | str") -> str:
    """Grafana's own variable formatters (public/app/features/templating/formatRegistry.ts), including
    their escaping, so a test sees what Grafana really sends: singlequote escapes `'` as `\\'` and
    leaves backslashes alone; percentencode is encodeURIComponentStrict of `{a,b}` for a selection."""
    from urllib.parse import quote

    if fmt == "singlequote":
        vs = values if isinstance(values, list) else [values]
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in vs)
    if fmt == "percentencode":
        joined = "{" + ",".join(values) + "}" if isinstance(values, list) else values
        return quote(joined, safe="")  # encodeURIComponent, plus !'()* escaped: only A-Za-z0-9-_.~ stay
    raise AssertionError(f"format {fmt} not modelled")


def expand(sql: str, variables: "dict[str, list[str] | str]") -> str:
    """Grafana's expansion: template variables (All = every value), then plugin macros."""
    sql = re.sub(r"\$\{(\w+):(\w+)\}", lambda m: grafana_format(m[2], variables[m[1]]), sql)
    frm, to = int(FROM.timestamp()), int(TO.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {INTERVAL_S} second)", sql)
    sql = sql.replace("$__interval_s", str(INTERVAL_S))
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


def variables_for(dash: dict, client, conversation: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for v in dash["templating"]["list"]:
        if v["type"] == "textbox":
            values[v["name"]] = conversation
            continue
        rows = client.query(expand(v["query"], values)).result_rows
        values[v["name"]] = [str(r[0]) for r in rows]
        assert values[v["name"]], f"variable {v['name']} has no values on demo data"
    return values


def _queries(dash):
    for p in dash["panels"]:
        for t in p["targets"]:
            yield f"panel {p['id']} '{p['title']}'", p["type"], t["rawSql"]
    for a in dash["annotations"]["list"]:
        yield f"annotation '{a['name']}'", "annotation", a["target"]["rawSql"]


CASES = [(d.name, *q) for d in DASHBOARDS for q in _queries(json.loads(d.read_text()))]


@pytest.mark.parametrize("dashboard,name,kind,sql", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_panel_query_runs_and_returns_what_the_panel_needs(demo, dashboard, name, kind, sql):
    client, conversation = demo
    dash = json.loads((ROOT / "infra/grafana/dashboards" / dashboard).read_text())
    result = client.query(expand(sql, variables_for(dash, client, conversation)))
    cols, types, rows = result.column_names, [t.base_type for t in result.column_types], result.result_rows
    assert rows, f"{name}: no rows on demo data"
    if kind in ("timeseries", "barchart"):
        assert cols[0] == "time" and types[0].startswith("DateTime"), (name, cols, types)
        assert any(t.startswith(("Float", "UInt", "Int", "Decimal")) for t in types[1:]), (name, types)
    elif kind == "stat":
        assert len(rows) == 1 and types[0].startswith(("UInt", "Int", "Float")), (name, types)
    elif kind == "annotation":
        assert list(cols[:2]) == ["time", "text"], (name, cols)


INJECTIONS = ["\\' OR 1=1 --", "x' OR 1=1 --", "ends-in-backslash\\", "'; DROP TABLE turns; --", "a,b{c}%27"]


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_a_hostile_variable_value_is_data_not_sql(demo, hostile):
    """Security review finding 2: Grafana's singlequote turns ' into \\' and leaves backslashes alone, so
    `\\' OR 1=1 --` in the conversation textbox returned every conversation, and an app ending in a
    backslash broke every panel. Each value is now percent-encoded by Grafana and decoded by ClickHouse."""
    client, conversation = demo
    dash = json.loads((ROOT / "infra/grafana/dashboards/convmon-conversations.json").read_text())
    turns_sql = next(t["rawSql"] for p in dash["panels"] for t in p["targets"] if "FROM turns" in t["rawSql"])
    values = variables_for(dash, client, hostile)
    assert client.query(expand(turns_sql, values)).result_rows == []  # no conversation has that id
    assert client.query(expand(turns_sql, dict(values, conversation=conversation))).result_rows  # a real one
    for _, _, sql in _queries(dash):  # a hostile app name among the selection (stored before validation)
        client.query(expand(sql, dict(values, app=values["app"] + [hostile], conversation=hostile)))


def test_the_old_singlequote_expansion_was_injectable(demo):
    """The regression the test above guards against, shown with Grafana's real singlequote escaping."""
    client, _ = demo
    sql = "SELECT count() FROM turns FINAL WHERE conversation_id = ${conversation:singlequote}"
    assert client.query(expand(sql, {"conversation": "\\' OR 1=1 --"})).result_rows[0][0] > 0
    assert "singlequote" not in "".join(d.read_text() for d in DASHBOARDS)


def test_dashboards_are_structurally_sound():
    provisioned = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources/clickhouse.yaml").read_text())
    ds_uids = {d["uid"] for d in provisioned["datasources"]}
    uids = set()
    assert len(DASHBOARDS) == 3
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        assert d["uid"] and d["title"] and d["uid"] not in uids
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        refs = [p["datasource"] for p in d["panels"]] + [t["datasource"] for p in d["panels"] for t in p["targets"]]
        refs += [v["datasource"] for v in d["templating"]["list"] if "datasource" in v]
        refs += [a["datasource"] for a in d["annotations"]["list"]]
        for r in refs:
            assert r["uid"] in ds_uids and r["type"] == "grafana-clickhouse-datasource"
        names = {v["name"] for v in d["templating"]["list"]}
        for _, _, sql in _queries(d):
            for var in re.findall(r"\$\{(\w+)", sql):
                assert var in names, f"{path.name}: ${{{var}}} is not a dashboard variable"


def test_committed_dashboards_are_the_generated_ones(tmp_path):
    from convmon.dashboards import write

    for p in write(tmp_path):
        assert p.read_text() == (ROOT / "infra/grafana/dashboards" / p.name).read_text(), \
            f"{p.name} differs: run python -m convmon.dashboards"
