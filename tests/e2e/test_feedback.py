"""Feedback end to end (issue 19): a page fires, on-call labels it with `convmon alerts label`, the label is stored
once even when published twice, joined with what convmon decided, and `convmon precision` reports it; a bad
feedback record reaches the DLQ with its reason."""

from __future__ import annotations

import json
import time

import pytest

from convmon.produce import TurnPublisher

from .test_alerting import TOXIC, turn

pytestmark = pytest.mark.e2e


def _first(consumer, want, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in consumer:
            v = json.loads(m.value)
            if want(v):
                return m
    return None


def test_a_page_labelled_false_alarm_is_stored_once_joined_and_counted_in_precision(e2e):
    worker = e2e.worker()
    conv = "fb-conv-1"
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many([turn(conv, 0, "user", TOXIC[0])])
    alerts = e2e.consumer(e2e.topics["alerts"])
    m = _first(alerts, lambda v: v.get("kind") == "toxic_turn", timeout=120)
    assert m is not None, worker.tail()
    alert = json.loads(m.value)

    r = e2e.convmon("alerts", "label", alert["alert_id"], "false_alarm", "--signal", "toxicity",
                    "--note", "a quote from a film; mail jane.doe@example.com", "--reporter", "oncall-amy")
    assert r.returncode == 0, r.stderr
    feedback = e2e.consumer(e2e.topics["feedback"])
    record = _first(feedback, lambda v: v.get("alert_id") == alert["alert_id"], timeout=30)
    assert record is not None
    with TurnPublisher(e2e.bootstrap, e2e.topics["feedback"]) as pub:
        pub.publish_raw(record.value, record.key).get(timeout=30)  # the same label, published again
        pub.publish_raw(b'{"feedback_id": "not-a-uuid", "verdict": "maybe"}', b"k").get(timeout=30)

    dlq = e2e.consumer(e2e.topics["dlq"])
    deadline, bad = time.monotonic() + 90, None
    while bad is None and time.monotonic() < deadline:
        for msg in dlq:
            if msg.value.startswith(b'{"feedback_id": "not-a-uuid"'):
                bad = msg
    assert bad is not None, worker.tail()
    assert dict(bad.headers).get("convmon.reason"), "dead-lettered with its reason"
    time.sleep(5)  # the label's batch is stored
    rc, _ = worker.terminate()
    assert rc == 0, worker.tail()

    fid = json.loads(record.value)["feedback_id"]
    rows = e2e.query(f"SELECT feedback_id, verdict, note FROM feedback FINAL WHERE feedback_id = '{fid}'")
    assert len(rows) == 1 and rows[0]["verdict"] == "false_alarm"
    assert "jane.doe" not in rows[0]["note"] and "[EMAIL]" in rows[0]["note"]
    joined = e2e.query(f"SELECT * FROM feedback_labels WHERE feedback_id = '{fid}'")
    assert len(joined) == 1, joined
    j = joined[0]
    assert j["score"] is not None and float(j["score"]) >= 0.5 and j["model_version"], j
    r = e2e.convmon("precision", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    tox = [x for x in lines if x["signal"] == "toxicity"]
    assert tox and tox[0]["labelled"] == 1 and tox[0]["false_alarm"] == 1 and tox[0]["precision"] == 0.0, lines
