"""End to end against the real broker: producers → worker → DLQ / chat.scores / ClickHouse."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest

from convmon.produce import TurnPublisher
from convmon.store.clickhouse import _locked_by_other_process

pytestmark = pytest.mark.e2e

TEXTS = [
    "Hi, can you help me reset my password?",
    "Sure! Click 'Forgot password' on the login page and follow the link we email you.",
    "My email is jane.roe@example.org and my phone is +1 415 555 0132.",
    "Here is my card 4111 1111 1111 1111, please refund it.",
    "Thanks, that worked perfectly.",
    "What's the weather usually like in Lisbon in May?",
]


def turn_dicts(n: int, prefix: str) -> list[dict]:
    out = []
    for i in range(n):
        conv = f"{prefix}-c{i % 97}"
        out.append({
            "event_id": str(uuid.uuid4()),
            "conversation_id": conv,
            "turn_index": i // 97,
            "role": "user" if (i // 97) % 2 == 0 else "assistant",
            "text": TEXTS[i % len(TEXTS)] + f" ({i})",
            "ts": "2026-11-28T12:00:00.000Z",
            "app": ["support-bot", "tutor"][i % 2],
            "model": {"provider": "openai", "name": "gpt-4o-mini", "version": ["2024-07-18", "2025-01-01"][i % 3 == 0]},
        })
    return out


def _valid(**over) -> bytes:
    d = turn_dicts(1, "bad")[0]
    d.update(over)
    return json.dumps(d).encode()


def malformed() -> list[tuple[bytes, bytes, str]]:
    """(key, value, expected DLQ reason): 21 records of different kinds."""
    deep = b'{"metadata": ' + b"[" * 200 + b"]" * 200 + b"}"
    cases = [
        (b"not json at all", "invalid_json"),
        (b'{"event_id": ', "invalid_json"),
        (b'{"text": "a", "text": "b"}', "invalid_json"),
        (b"\xff\xfe\xfd", "invalid_utf8"),
        (b"", "empty"),
        (b"[1, 2, 3]", "not_an_object"),
        (b"null", "not_an_object"),
        (deep, "too_deep"),
        (b'{"pad": "' + b"x" * 300_000 + b'"}', "too_large"),
        (_valid(text="lone \\ud800 surrogate").replace(b"\\\\ud800", b"\\ud800"), "invalid_unicode"),
        (_valid(role="bot"), "schema_violation"),
        (_valid(turn_index="3"), "schema_violation"),
        (_valid(ts="28/11/2026 12:00"), "schema_violation"),
        (_valid(event_id="not-a-uuid"), "schema_violation"),
        (_valid(unexpected=True), "schema_violation"),
        (_valid(model={"provider": "x"}), "schema_violation"),
        (_valid(text="y" * 70_000), "text_too_long"),
        (_valid(ts="1990-01-01T00:00:00Z"), "ts_out_of_range"),
        (_valid(ts="2999-01-01T00:00:00Z"), "ts_out_of_range"),
        (_valid(text=None), "schema_violation"),
    ]
    out = [(f"bad-{i}".encode(), v, r) for i, (v, r) in enumerate(cases)]
    d = json.loads(_valid())
    out.append((b"some-other-conversation", json.dumps(d).encode(), "key_mismatch"))
    return out


def wait_for_topic(e2e, topic: str, timeout: float = 90) -> None:
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=e2e.bootstrap)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if topic in c.topics():
                return
            time.sleep(0.5)
    finally:
        c.close()
    raise AssertionError(f"topic {topic} was not created within {timeout}s")


def collect(e2e, wanted: set[str], n_dead: int, timeout: float, workers=()) -> tuple[dict, list]:
    """Follow chat.scores and the DLQ until every wanted event_id and n_dead letters arrived."""
    seen: dict[str, int] = {}
    dead: list = []
    c = e2e.consumer(e2e.topics["scores"], e2e.topics["dlq"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (len(wanted - seen.keys()) or len(dead) < n_dead):
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    if tp.topic == e2e.topics["dlq"]:
                        dead.append(m)
                    else:
                        eid = json.loads(m.value)["event_id"]
                        seen[eid] = seen.get(eid, 0) + 1
            for w in workers:
                assert w.alive(), f"worker died:\n{w.tail()}"
    finally:
        c.close()
    return seen, dead


def test_turns_from_two_clients_arrive_once_and_bad_records_reach_the_dlq(e2e):
    assert shutil.which("kcat"), "kcat is needed (Debian package kcat; .ci/run installs it)"
    e2e.env["CONVMON_WORKER__MAX_RECORD_BYTES"] = "200000"
    worker = e2e.worker()
    wait_for_topic(e2e, e2e.topics["scores"])
    # The worker opens its embedded store as its agent starts; wait until it holds the store's lock.
    deadline = time.monotonic() + 60
    while not _locked_by_other_process(e2e.tmp / "var" / "clickhouse") and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = e2e.convmon("db", "query", "SELECT 1")
    assert busy.returncode != 0 and "in use by another process" in busy.stderr

    py_turns = turn_dicts(2000, "py")
    kcat_turns = turn_dicts(50, "kcat")
    bad = malformed()
    assert len(bad) >= 20 and len({r for _, _, r in bad}) >= 10

    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"], max_request_size=2_000_000) as pub:
        for t in py_turns[:1000]:
            pub.publish(t)
        for key, value, _ in bad:  # malformed records in the middle of the stream
            pub.publish_raw(value, key=key)
        for t in py_turns[1000:]:
            pub.publish(t)
    # A chat backend in another language: kcat (librdkafka), key<TAB>value per line.
    lines = "".join(f"{t['conversation_id']}\t{json.dumps(t)}\n" for t in kcat_turns)
    r = subprocess.run(["kcat", "-P", "-b", e2e.bootstrap, "-t", e2e.topics["turns"], "-K", "\t"],
                       input=lines.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr

    wanted = {t["event_id"] for t in py_turns + kcat_turns}
    seen, dead = collect(e2e, wanted, len(bad), timeout=240, workers=[worker])
    assert wanted <= seen.keys(), f"{len(wanted - seen.keys())} turns never scored\n{worker.tail()}"

    # Every malformed record, with its original bytes and the right reason.
    expected = {key: (value, reason) for key, value, reason in bad}
    got = {m.key: (m.value, dict(m.headers)["convmon.reason"].decode()) for m in dead}
    assert len(dead) == len(bad)
    for key, (value, reason) in expected.items():
        assert got[key][1] == reason, (key, got[key][1], reason)
        assert got[key][0] == value
        assert dict(next(m for m in dead if m.key == key).headers)["convmon.source"].startswith(
            e2e.topics["turns"].encode())

    rc, took = worker.terminate(timeout=60)
    assert rc == 0, worker.tail()
    assert took < 30, f"shutdown took {took:.1f}s"

    rows = e2e.query("SELECT count() AS n, uniqExact(event_id) AS u FROM turns")
    assert rows == [{"n": 2050, "u": 2050}]  # exactly once, even before deduplication
    rows = e2e.query("SELECT toString(event_id) AS id FROM turns FINAL")
    assert {r["id"] for r in rows} == wanted
    pii = e2e.query("SELECT text_redacted, pii FROM turns FINAL WHERE has(pii, 'credit_card') LIMIT 1")
    assert "[CREDIT_CARD]" in pii[0]["text_redacted"] and "4111" not in pii[0]["text_redacted"]


def test_sigkill_mid_stream_then_restart_stores_every_turn_exactly_once(e2e):
    e2e.env["CONVMON_WORKER__BATCH_SIZE"] = "200"
    first = e2e.worker("first")
    wait_for_topic(e2e, e2e.topics["scores"])
    turns = turn_dicts(4000, "kill")
    wanted = {t["event_id"] for t in turns}
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many(turns)

    # Let it get part-way, then kill it without warning.
    scored = 0
    c = e2e.consumer(e2e.topics["scores"])
    deadline = time.monotonic() + 120
    while scored < 600 and time.monotonic() < deadline:
        scored += sum(len(m) for m in c.poll(timeout_ms=200).values())
        assert first.alive(), first.tail()
    c.close()
    assert 0 < scored < len(wanted), f"could not catch the worker mid-stream ({scored} scored)"
    first.proc.kill()
    first.proc.wait(30)

    second = e2e.worker("second")
    seen, _ = collect(e2e, wanted, 0, timeout=240, workers=[second])
    missing = wanted - seen.keys()
    assert not missing, f"{len(missing)} turns never scored after the restart\n{second.tail()}"
    rc, _ = second.terminate(timeout=60)
    assert rc == 0, second.tail()

    rows = e2e.query("SELECT count() AS n, uniqExact(event_id) AS u FROM turns FINAL")
    assert rows == [{"n": 4000, "u": 4000}]
    ids = {r["id"] for r in e2e.query("SELECT toString(event_id) AS id FROM turns FINAL")}
    assert ids == wanted


def test_a_dead_letter_just_under_the_size_cap_reaches_the_dlq_and_the_worker_goes_on(e2e):
    """Security review finding 7: a record just under worker.max_record_bytes (1 MiB) plus the DLQ headers
    exceeded the producer's and the broker's message limit and crashed the score agent. The worker now
    creates the DLQ with room for any accepted-size record, and with an explicit, short retention."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    worker = e2e.worker()
    wait_for_topic(e2e, e2e.topics["scores"])
    big = _valid(text="z" * 1_047_000)  # text_too_long; the whole record is just under 1 MiB
    assert 1_040_000 < len(big) < 1_048_576
    after = turn_dicts(5, "after-big")
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"], max_request_size=2_000_000) as pub:
        pub.publish_raw(big, key=json.loads(big)["conversation_id"].encode())
        for t in after:
            pub.publish(t)
    seen, dead = collect(e2e, {t["event_id"] for t in after}, 1, timeout=120, workers=[worker])
    assert {t["event_id"] for t in after} <= seen.keys(), worker.tail()
    assert len(dead) == 1 and dead[0].value == big
    assert dict(dead[0].headers)["convmon.reason"] == b"text_too_long"

    admin = KafkaAdminClient(bootstrap_servers=e2e.bootstrap)
    try:
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, e2e.topics["dlq"])])
        configs = {k: v["value"] for k, v in res["topic"][e2e.topics["dlq"]].items()}
    finally:
        admin.close()
    assert configs["retention.ms"] == str(72 * 3_600_000)
    assert int(configs["max.message.bytes"]) >= 1_048_576 + 65536
    rc, _ = worker.terminate(timeout=60)
    assert rc == 0, worker.tail()
