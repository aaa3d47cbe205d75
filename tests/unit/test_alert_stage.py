"""The alert stage without Kafka: a batch of chat.alerts records → outbox pages, incident changes, rows."""

from __future__ import annotations

from convmon.alerting import outbox
from convmon.alerting.rules import RuleSet, turn_alerts
from convmon.alerting.stage import AlertStage
from convmon.batch import RawRecord
from convmon.wire import ForgetIncident, decode_alert_record, encode_alert
from tests.unit.test_alert_rules import THRESHOLDS, scored


def raw(records):
    """Alert records as they arrive on chat.alerts."""
    out = []
    for i, r in enumerate(records):
        key, value = r.encode() if isinstance(r, ForgetIncident) else encode_alert(r)
        out.append(RawRecord(value, key, "chat.alerts", 0, i))
    return out


def toxic_alerts(n, key="k"):
    out = turn_alerts(RuleSet.load(), scored(n, toxicity=0.99), THRESHOLDS, {})[:n]
    for a in out:
        a.dedup_key = key
    return out


def test_a_burst_is_one_page_to_every_channel_and_every_alert_is_recorded():
    stage = AlertStage(RuleSet.load(), ["slack", "webhook"], retention_s=86400)
    table: dict = {}
    out = stage.process(raw(toxic_alerts(5)), table.get, now=1000)
    assert [(ch, k) for ch, k, _ in out.outbox] == [("slack", b"k"), ("webhook", b"k")]
    assert outbox.decode(out.outbox[0][2]).count == 1
    assert [r.delivery for r in out.rows] == ["notified"] + ["suppressed"] * 4
    assert out.rows[0].channels == ("slack", "webhook") and out.rows[1].channels == ()
    assert [i for i, _, _ in out.changes] == [0, 1, 2, 3, 4]  # each record's change, in order
    assert out.changes[-1][2]["count"] == 5
    assert sum(n for (_, d), n in out.decisions.items() if d == "suppressed") == 4


def test_a_batch_read_again_after_a_restart_pages_nobody_and_changes_nothing():
    stage = AlertStage(RuleSet.load(), ["slack"], retention_s=86400)
    alerts = toxic_alerts(3)
    first = stage.process(raw(alerts), {}.get, now=1000)
    table = {k: s for _, k, s in first.changes}
    again = stage.process(raw(alerts), table.get, now=1001)
    assert again.outbox == [] and again.changes == [] and again.rows == []
    assert set(again.decisions) == {("toxic_turn", "duplicate")}


def test_the_sweep_resolves_a_quiet_incident_then_forgets_it_after_the_retention():
    rules = RuleSet.load()
    stage = AlertStage(rules, ["slack"], retention_s=3600)
    out = stage.process(raw(toxic_alerts(1)), {}.get, now=1000)
    table = {}
    for _, key, state in out.changes:
        table[key] = state
        stage.written(key, state)
    quiet = rules.rules["toxic_turn"].resolve_after_s
    assert stage.sweep(lambda: list(table.items()), table.get, generation=1, now=1000 + quiet - 5) == []
    (rec,) = stage.sweep(lambda: list(table.items()), table.get, generation=1, now=1000 + quiet + 5)
    resolved = decode_alert_record(rec[1])
    assert resolved.status == "resolved" and resolved.summary.startswith("resolved after")
    # the stream applies it: the incident is resolved and the page goes out
    out = stage.process(raw([resolved]), table.get, now=1000 + quiet + 6)
    assert [r.delivery for r in out.rows] == ["resolved"] and len(out.outbox) == 1
    for _, key, state in out.changes:
        table[key] = state
        stage.written(key, state)
    later = 1000 + quiet + 6 + 3600 + rules.rules["toxic_turn"].renotify_s * 10
    (forget,) = stage.sweep(lambda: list(table.items()), table.get, generation=1, now=later)
    request = decode_alert_record(forget[1])
    assert request == ForgetIncident("k", table["k"]["resolved_at"])
    out = stage.process(raw([request]), table.get, now=later)
    assert out.changes == [(0, "k", None)] and out.rows == []


def test_a_forget_request_for_an_incident_that_reopened_changes_nothing():
    stage = AlertStage(RuleSet.load(), ["slack"], retention_s=3600)
    table = {"k": {"status": "open", "resolved_at": None}}
    assert stage.process(raw([ForgetIncident("k", 123.0)]), table.get, now=5000).changes == []


def test_records_that_are_not_alert_records_are_dead_lettered_and_the_rest_still_page():
    """A non-UUID alert_id made the ClickHouse insert fail forever and stalled alerting (noticed in session 3)."""
    import json

    stage = AlertStage(RuleSet.load(), ["slack"], retention_s=3600)
    good = toxic_alerts(1)[0]
    d = good.to_dict()
    bad = [json.dumps({**d, "alert_id": "not-a-uuid"}).encode(), json.dumps({**d, "kind": "made_up"}).encode(),
           json.dumps({**d, "extra": 1}).encode(), b"[1, 2]", b"\xff\xfe", json.dumps({**d, "ts": "yesterday"}).encode(),
           json.dumps({"control": "forget_incident", "dedup_key": "k"}).encode()]
    records = [RawRecord(v, b"k", "chat.alerts", 3, 40 + i) for i, v in enumerate(bad)] + raw([good])
    out = stage.process(records, {}.get, now=1000)
    assert [d.reason for d in out.dead] == ["invalid_alert_record"] * len(bad)
    assert [d.record.offset for d in out.dead] == list(range(40, 40 + len(bad)))
    assert [r.delivery for r in out.rows] == ["notified"] and len(out.outbox) == 1
    assert out.changes[0][0] == len(bad)  # the change belongs to the good record's event
    assert "not-a-uuid" not in " ".join(d.detail for d in out.dead)  # reasons, never the record's content
