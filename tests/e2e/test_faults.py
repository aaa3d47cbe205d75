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


def test_1500_pages_during_a_60s_outage_and_a_restart_are_each_delivered_exactly_once(e2e):
    """Security finding 3: the in-memory queue dropped 500 of 1,500 pages during an outage, and a restart lost
    the rest. Now every decided page waits in the channel's outbox topic until the channel accepts it. The
    webhook `hook` is down for 60 s while 1,500 incidents are decided, the worker is restarted in the middle;
    after recovery each page arrives exactly once. The channel that stayed up (`ops`) gets the 1,500 pages
    once each too, and one channel_backlog page about `hook`, then its resolution."""
    from kafka import KafkaProducer

    from convmon.alerting.model import Alert

    down, up = Receiver(free_port(), start=False), Receiver()
    e2e.env["CONVMON_ALERTING__CHANNELS"] = json.dumps([
        {"type": "webhook", "name": "hook", "url": down.url, "secret_env": "CONVMON_T_SECRET"},
        {"type": "webhook", "name": "ops", "url": up.url, "secret_env": "CONVMON_T_SECRET"}])
    e2e.env["CONVMON_T_SECRET"] = "s"
    e2e.env["CONVMON_ALERTING__SWEEP_INTERVAL_S"] = "5"
    e2e.env["CONVMON_ALERTING__BACKLOG_ALERT_AFTER_S"] = "15"
    n, outage_s = 1500, 60
    w = e2e.worker("before")
    wait_for_topic(e2e, e2e.topics["scores"])
    t0 = time.monotonic()
    producer = KafkaProducer(bootstrap_servers=e2e.bootstrap, acks="all")
    keys = [f"toxic_turn|app=outage|conversation_id=c{i}" for i in range(n)]
    for i, key in enumerate(keys):
        a = Alert(kind="toxic_turn", severity="warning", summary=f"toxic turn {i}", dedup_key=key, app="outage",
                  model_name="m", model_version="v1", role="user", conversation_id=f"c{i}")
        producer.send(e2e.topics["alerts"], key=key.encode(), value=json.dumps(a.to_dict(), default=str).encode())
    producer.flush()
    producer.close()

    def pages(rx, kind="toxic_turn"):
        return [p for p in rx.posts if p["alert"]["kind"] == kind and p["status"] == "firing"]

    deadline = t0 + outage_s / 2
    while len(pages(up)) < n and time.monotonic() < deadline:  # every incident decided and routed
        time.sleep(0.5)
    assert len(pages(up)) == n, w.tail()
    assert w.terminate(timeout=90)[0] == 0  # restart in the middle of the outage
    w = e2e.worker("after")
    time.sleep(max(0.0, t0 + outage_s - time.monotonic()))
    assert w.alive() and not down.posts, w.tail()
    backlog = pages(up, "channel_backlog")
    assert len(backlog) == 1 and backlog[0]["alert"]["details"]["channel"] == "hook", w.tail()

    down.start()  # the channel is back
    try:
        deadline = time.monotonic() + 150  # the retry back-off is capped at 60 s
        while len(down.posts) < n and time.monotonic() < deadline:
            time.sleep(0.5)
        resolved = lambda: [p for p in up.posts if p["alert"]["kind"] == "channel_backlog" and p["status"] == "resolved"]  # noqa: E731
        while not resolved() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # let any (wrong) second delivery arrive
    finally:
        down.stop()
        up.stop()
    got = [p["dedup_key"] for p in down.posts]
    assert len(got) == n and set(got) == set(keys), (len(got), len(set(got)), w.tail())  # all, exactly once
    assert sorted(p["dedup_key"] for p in pages(up)) == sorted(keys)  # the live channel: once each, no repeats
    assert len(pages(up, "channel_backlog")) == 1 and len(resolved()) == 1
    assert w.terminate()[0] == 0


def test_a_partition_that_stops_being_delivered_is_detected_and_recovered(e2e):
    """Issue 12: a partition stalled with lag and nothing said so. Here the worker's fetches lose partition 0's
    records from offset 10 on (tests/e2e/stalling_worker.py) and nothing later arrives, so the offset-gap
    re-read cannot see it. The watchdog logs it by topic and partition, counts it, seeks back to the
    committed offset, and every turn is stored."""
    import sys
    import urllib.request

    from kafka import KafkaProducer

    port = free_port()
    e2e.env.update(CONVMON_WORKER__STALL_AFTER_S="6", CONVMON_WORKER__METRICS_PORT=str(port),
                   STALL_TOPIC=e2e.topics["turns"], STALL_PARTITION="0", STALL_FROM="10")
    w = e2e.worker("stall", argv=[sys.executable, str(REPO / "tests/e2e/stalling_worker.py")])
    wait_for_topic(e2e, e2e.topics["scores"])
    turns = turn_dicts(40, "stall")
    producer = KafkaProducer(bootstrap_servers=e2e.bootstrap, acks="all")
    for t in turns:  # all to partition 0, in one go: nothing arrives after them
        producer.send(e2e.topics["turns"], key=t["conversation_id"].encode(), value=json.dumps(t).encode(), partition=0)
    producer.flush()
    producer.close()
    seen, _ = collect(e2e, {t["event_id"] for t in turns}, 0, timeout=120, workers=[w])
    log = w.log.read_text()
    assert "FAULT: losing fetched records" in log  # the fault happened…
    assert len(seen) == 40, w.tail()  # …and every turn was scored all the same
    assert f"partition {e2e.topics['turns']}/0 stalled" in log and "FAULT: healed by a seek" in log
    deadline = time.monotonic() + 30
    while True:  # the gauge follows on the watchdog's next look
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        if "convmon_partitions_stalled 0.0" in metrics or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert f'convmon_partition_stalled_total{{partition="0",topic="{e2e.topics["turns"]}"}} 1.0' in metrics
    assert "convmon_partitions_stalled 0.0" in metrics  # recovered
    assert "moves again" in w.log.read_text()
    assert w.terminate()[0] == 0
