"""The on-call and feedback commands on embedded ClickHouse (no Kafka: the label's producer is captured)."""

from __future__ import annotations

import json
import uuid

from click.testing import CliRunner

from convmon.alerting.model import Alert
from convmon.cli import main
from convmon.feedback.contract import FeedbackDecoder
from convmon.store.alerts import AlertRecord, AlertStore
from convmon.store.migrate import migrate
from tests.unit.test_feedback_precision import fixture


def run(settings, *args):
    return CliRunner().invoke(main, list(args), obj=settings, catch_exceptions=False)


def test_calibrate_writes_a_snippet_for_review_and_precision_and_export_read_the_same_labels(settings, client, tmp_path):
    migrate(client)
    fixture(client)
    r = run(settings, "calibrate", "--app", "app-a", "--budget", "5", "--out", str(tmp_path / "s.toml"),
            "--rules-out", str(tmp_path / "rules.toml"))
    assert r.exit_code == 0, r.output
    assert "toxicity" in r.output and "not applied" in r.output
    snippet = (tmp_path / "s.toml").read_text()
    assert 'match = { app = "app-a" }' in snippet and "NOT APPLIED" in snippet
    assert 'match = { app = "app-a" }' in (tmp_path / "rules.toml").read_text()
    r = run(settings, "precision", "--app", "app-a", "--json")
    (row,) = [json.loads(line) for line in r.output.splitlines()]
    assert row["signal"] == "toxicity" and row["labelled"] == row["confirmed"] + row["false_alarm"] + row["missed"]
    out = tmp_path / "labels.jsonl"
    r = run(settings, "feedback", "export", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == row["labelled"]
    assert {"text_redacted", "signal", "verdict", "toxicity", "scorer_version"} <= set(lines[0])
    assert "@example.com" not in out.read_text()  # the stored text is redacted (make_turns puts an e-mail in each)
    # the export is training data as it is: dropped into models/data/feedback/, the build's data reads it
    from convmon_dev.modelsuite.datasets import feedback_rows

    models = tmp_path / "models"
    (models / "data" / "feedback").mkdir(parents=True)
    out.rename(models / "data" / "feedback" / "app-a.jsonl")
    rows = feedback_rows(models)["toxicity"]
    assert len(rows) == len(lines)
    assert sorted(r["label"] for r in rows) == sorted(0 if x["verdict"] == "false_alarm" else 1 for x in lines)


def test_calibrate_refuses_with_too_few_labels(settings, client, tmp_path):
    migrate(client)
    fixture(client, n_labels=5)
    r = run(settings, "calibrate", "--app", "app-a", "--out", str(tmp_path / "s.toml"))
    assert "nothing proposed: too few labels" in r.output
    assert "match =" not in (tmp_path / "s.toml").read_text()


def test_alerts_list_and_label_publish_a_valid_feedback_record(settings, client, monkeypatch):
    migrate(client)
    alert = Alert("policy_violation", "warning", "climate_science 0.97", "k", app="app-a",
                  details={"signal": "climate_science", "event_id": str(uuid.uuid4())})
    folded = Alert("toxic_turn", "warning", "toxicity 0.9", "k2", app="app-a")
    AlertStore(client).write([AlertRecord(alert, "notified"), AlertRecord(folded, "suppressed")])
    r = run(settings, "alerts", "list", "--since", "1h")
    assert alert.alert_id in r.output and folded.alert_id not in r.output
    assert folded.alert_id in run(settings, "alerts", "list", "--all").output
    assert run(settings, "alerts", "list", "--kind", "toxic_turn").output.count("\n") == 1  # the hint line only
    sent = []

    class Publisher:
        topic = "chat.feedback"

        @classmethod
        def from_settings(cls, kafka, topic):
            assert topic == settings.topics.feedback
            return cls()

        def publish_raw(self, value, key):
            sent.append((key, value))
            return type("F", (), {"get": lambda self, timeout: None})()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr("convmon.produce.TurnPublisher", Publisher)
    r = run(settings, "alerts", "label", alert.alert_id, "false_alarm", "--note", "a quote, not a claim",
            "--reporter", "oncall-7")
    assert r.exit_code == 0, r.output
    ((key, value),) = sent
    fb = FeedbackDecoder().decode(value, key)
    assert (fb.alert_id, fb.signal, fb.verdict, fb.source) == (alert.alert_id, "policy:climate_science",
                                                               "false_alarm", "oncall")
    assert key == alert.alert_id.encode()
    r = CliRunner().invoke(main, ["alerts", "label", "not-a-uuid", "confirmed"], obj=settings)
    assert r.exit_code != 0 and "UUID" in r.output
