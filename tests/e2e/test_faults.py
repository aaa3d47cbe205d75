"""Fault tolerance with real components: ClickHouse refusing writes, the broker gone for 30 s,
an on-call channel down. Nothing is lost; the worker recovers by itself."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from convmon.produce import TurnPublisher

from .conftest import REPO
from .test_alerting import TOXIC, Receiver, free_port, turn
from .test_pipeline import collect, turn_dicts, wait_for_topic

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True)


def _turns_table_dir(e2e) -> Path:
    """Let a worker create the schema, stop it, and return the `turns` table's data directory."""
    w = e2e.worker("setup")
    wait_for_topic(e2e, e2e.topics["scores"])
    warm = turn_dicts(10, "warm")
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many(warm)
    collect(e2e, {t["event_id"] for t in warm}, 0, timeout=60, workers=[w])
    assert w.terminate()[0] == 0
    (path,) = e2e.query("SELECT data_paths[1] AS p FROM system.tables WHERE database = 'convmon' AND name = 'turns'")
    table_dir = Path(path["p"])
    assert table_dir.is_dir()
    return table_dir


def test_clickhouse_refusing_writes_loses_nothing_even_if_the_worker_dies_meanwhile(e2e):
    e2e.env["CONVMON_SCORING__MODELS"] = "false"  # this is about the store, keep it fast
    table_dir = _turns_table_dir(e2e)
    _chattr("+i", table_dir)  # even root cannot create the new part directories an insert needs
    try:
        first = e2e.worker("refused")
        turns = turn_dicts(600, "refused")
        with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
            pub.publish_many(turns)
        time.sleep(8)
        assert first.alive(), first.tail()
        assert "ClickHouse write of" in first.log.read_text()  # the failure is visible
        seen, _ = collect(e2e, {"none"}, 0, timeout=3)
        assert not ({t["event_id"] for t in turns} & seen.keys())  # nothing published past the failed write
        first.proc.kill()  # dies while its batch is unstored: its offsets must not have been committed
        first.proc.wait(30)
    finally:
        _chattr("-i", table_dir)

    second = e2e.worker("recovered")
    seen, _ = collect(e2e, {t["event_id"] for t in turns}, 0, timeout=120, workers=[second])
    assert second.terminate()[0] == 0
    rows = e2e.query("SELECT count() AS n, uniqExact(event_id) AS u FROM turns FINAL WHERE conversation_id IN "
                     + e2e.ps_in({t["conversation_id"] for t in turns}))
    assert rows == [{"n": 600, "u": 600}]


def test_writes_resume_by_themselves_when_clickhouse_accepts_again(e2e):
    e2e.env.update(CONVMON_SCORING__MODELS="false", CONVMON_WORKER__STORE_RETRY_MAX_S="2")
    table_dir = _turns_table_dir(e2e)
    w = e2e.worker("resume")
    _chattr("+i", table_dir)
    try:
        turns = turn_dicts(500, "resume")
        with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
            pub.publish_many(turns)
        time.sleep(6)
    finally:
        _chattr("-i", table_dir)
    seen, _ = collect(e2e, {t["event_id"] for t in turns}, 0, timeout=120, workers=[w])
    assert {t["event_id"] for t in turns} <= seen.keys(), w.tail()
    assert w.terminate()[0] == 0
    rows = e2e.query("SELECT count() AS n FROM turns FINAL WHERE conversation_id IN "
                     + e2e.ps_in({t["conversation_id"] for t in turns}))
    assert rows == [{"n": 500}]


def test_broker_down_for_30_seconds_then_back(e2e):
    script = str(REPO / "infra/kafka/kafka.sh")
    e2e.env["CONVMON_SCORING__MODELS"] = "false"
    w = e2e.worker()
    wait_for_topic(e2e, e2e.topics["scores"])
    before = turn_dicts(300, "before")
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many(before)
    collect(e2e, {t["event_id"] for t in before}, 0, timeout=60, workers=[w])
    assert subprocess.run(["bash", script, "down"], capture_output=True).returncode == 0
    try:
        time.sleep(30)
        assert w.alive(), w.tail()
    finally:
        assert subprocess.run(["bash", script, "up"], capture_output=True).returncode == 0
    after = turn_dicts(300, "after")
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many(after)
    seen, _ = collect(e2e, {t["event_id"] for t in before + after}, 0, timeout=180, workers=[w])
    assert {t["event_id"] for t in after} <= seen.keys(), w.tail()
    assert w.terminate(timeout=90)[0] == 0
    rows = e2e.query("SELECT count() AS n, uniqExact(event_id) AS u FROM turns FINAL")
    assert rows == [{"n": 600, "u": 600}]


def test_alert_channel_down_for_minutes_then_back_delivers_the_queued_pages(e2e):
    """The webhook is unreachable for 150 s while new incidents keep arriving: scoring goes on, the pages
    queue, and every one is delivered (once) after the endpoint comes back."""
    rx = Receiver(free_port(), start=False)  # nothing listens on the port yet
    e2e.env["CONVMON_ALERTING__CHANNELS"] = json.dumps(
        [{"type": "webhook", "name": "hook", "url": rx.url, "secret_env": "CONVMON_T_SECRET"}])
    e2e.env["CONVMON_T_SECRET"] = "s"
    w = e2e.worker()
    wait_for_topic(e2e, e2e.topics["scores"])
    convs = [f"down-{i}" for i in range(6)]
    outage_s, t0 = 150, time.monotonic()
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        for i, c in enumerate(convs):  # a new incident every 25 s of the outage
            time.sleep(max(0.0, t0 + 25 * i - time.monotonic()))
            t = turn(c, 0, "user", TOXIC[i % 2])
            pub.publish(t)
            seen, _ = collect(e2e, {t["event_id"]}, 0, timeout=60, workers=[w])
            assert t["event_id"] in seen  # scoring goes on while the channel is down
    time.sleep(max(0.0, t0 + outage_s - time.monotonic()))
    assert w.alive() and not rx.posts
    rx.start()
    try:
        deadline = time.monotonic() + 120  # the retry back-off is capped at 60 s
        while len(rx.pages("toxic_turn")) < len(convs) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # let any (wrong) second delivery arrive
    finally:
        rx.stop()
    assert sorted(r["alert"]["conversation_id"] for r in rx.pages("toxic_turn")) == sorted(e2e.ps(c) for c in convs)
    assert w.terminate()[0] == 0
