"""The alert stage without Kafka: a batch of chat.alerts records → outbox pages, incident changes, rows."""

from __future__ import annotations

from convmon.alerting import outbox
from convmon.alerting.rules import RuleSet, turn_alerts
from convmon.alerting.stage import AlertStage
from convmon.wire import ForgetIncident, decode_alert_record
from tests.unit.test_alert_rules import THRESHOLDS, scored


def toxic_alerts(n, key="k"):
    out = turn_alerts(RuleSet.load(), scored(n, toxicity=0.99), THRESHOLDS, {})[:n]
    for a in out:
        a.dedup_key = key
    return out


def test_a_burst_is_one_page_to_every_channel_and_every_alert_is_recorded():
    stage = AlertStage(RuleSet.load(), ["slack", "webhook"], retention_s=86400)
    table: dict = {}
    out = stage.process(toxic_alerts(5), table.get, now=1000)
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
    first = stage.process(alerts, {}.get, now=1000)
    table = {k: s for _, k, s in first.changes}
    again = stage.process(alerts, table.get, now=1001)
    assert again.outbox == [] and again.changes == [] and again.rows == []
    assert set(again.decisions) == {("toxic_turn", "duplicate")}


def test_the_sweep_resolves_a_quiet_incident_then_forgets_it_after_the_retention():
    rules = RuleSet.load()
    stage = AlertStage(rules, ["slack"], retention_s=3600)
    out = stage.process(toxic_alerts(1), {}.get, now=1000)
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
    out = stage.process([resolved], table.get, now=1000 + quiet + 6)
    assert [r.delivery for r in out.rows] == ["resolved"] and len(out.outbox) == 1
    for _, key, state in out.changes:
        table[key] = state
        stage.written(key, state)
    later = 1000 + quiet + 6 + 3600 + rules.rules["toxic_turn"].renotify_s * 10
    (forget,) = stage.sweep(lambda: list(table.items()), table.get, generation=1, now=later)
    request = decode_alert_record(forget[1])
    assert request == ForgetIncident("k", table["k"]["resolved_at"])
    out = stage.process([request], table.get, now=later)
    assert out.changes == [(0, "k", None)] and out.rows == []


def test_a_forget_request_for_an_incident_that_reopened_changes_nothing():
    stage = AlertStage(RuleSet.load(), ["slack"], retention_s=3600)
    table = {"k": {"status": "open", "resolved_at": None}}
    assert stage.process([ForgetIncident("k", 123.0)], table.get, now=5000).changes == []
