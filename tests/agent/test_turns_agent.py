"""Agent layer: the real Faust agent, fed through agent.test_context (no broker).

Outbound topic sends are captured in memory (test_context has no producer); the
ClickHouse store is the real embedded engine.
"""

import asyncio
import json
import uuid
from collections import Counter

import pytest

from tests.signals import as_signals
from convmon.agents.app import create_app
from convmon.alerting import outbox
from tests.unit.test_contract import VALID
from tests.unit.test_store import make_turns


def LATER() -> float:
    """The tests' wall clock: after every event time they use (the watermark is capped near the wall clock)."""
    return 2_000_000_000.0


class Captured:
    def __init__(self):
        self.sent = []

    async def send(self, key=None, value=None, headers=None, **kw):
        self.sent.append((key, value, headers or {}))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


HOOK_PORT = 18531  # a configured channel (nothing listens: pages stay in its outbox)


@pytest.fixture
def app(settings, monkeypatch):
    settings.worker.batch_size = 16
    settings.worker.batch_within_s = 0.05
    settings.alerting.channels = [{"type": "webhook", "name": "hook", "url": f"http://127.0.0.1:{HOOK_PORT}/hook",
                                   "secret_env": "CONVMON_T_HOOK_SECRET"}]
    monkeypatch.setenv("CONVMON_T_HOOK_SECRET", "s3cret")
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    app.captured = {}
    topics = {name: getattr(app.convmon.topics, name) for name in ("dlq", "turns", "scores", "alerts", "signals")}
    topics["outbox:hook"] = app.convmon.topics.outboxes["hook"]
    for name, topic in topics.items():
        captured = Captured()
        monkeypatch.setattr(topic, "send", captured.send)
        monkeypatch.setattr(topic, "maybe_declare", _noop)
        app.captured[name] = captured
    yield app
    app.convmon.runtime.sink.close_blocking()
    app.convmon.runtime.processor.pipeline.close()


async def _noop():
    return None


def _raw(turn) -> bytes:
    return json.dumps(turn.model_dump(exclude_none=True)).encode()


async def _feed(app, records, expect):
    async with app.convmon.agents["score_turns"].test_context() as agent:
        for key, value in records:
            await agent.put(value, key=key)
        for _ in range(1200):  # up to 60 s on a loaded machine; ends as soon as done
            if sum(agent.results.values()) >= expect:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the last batch is stored and published while the agent waits for more
        return sum(agent.results.values())


def test_agent_scores_stores_publishes_and_dead_letters(app):
    turns = make_turns(40)
    bad = [(b"k", b"{broken"), (None, json.dumps({**VALID, "role": "bot"}).encode()), (None, b"\xff")]
    records = [(t.conversation_id.encode(), _raw(t)) for t in turns[:20]] + bad + [
        (t.conversation_id.encode(), _raw(t)) for t in turns[20:]
    ]
    processed = asyncio.run(_feed(app, records, len(records)))
    assert processed == len(records)

    scores = app.captured["scores"].sent
    assert sorted(json.loads(v)["event_id"] for _, v, _ in scores) == sorted(t.event_id for t in turns)
    event = json.loads(scores[0][1])
    assert {"pii", "text_redacted", "toxicity", "policy_scores", "scorer_version"} <= set(event)
    assert scores[0][0] == event["conversation_id"].encode()

    dead = app.captured["dlq"].sent
    assert [h["convmon.reason"] for _, _, h in dead] == [b"invalid_json", b"schema_violation", b"invalid_utf8"]
    assert [v for _, v, _ in dead] == [v for _, v in bad]  # original bytes, unchanged

    from convmon.store.clickhouse import connect

    client = connect(app.convmon.runtime.settings.clickhouse)
    assert client.query("SELECT count() FROM turns FINAL").result_rows[0][0] == 40


def test_toxic_burst_becomes_alert_candidates_and_one_incident(app, monkeypatch):
    """Score agent → chat.alerts candidates; alerts agent → one page, the rest suppressed, all recorded."""
    from convmon.wire import decode_alert_record as alert_from_json

    texts = ["you are a pathetic worthless idiot and everyone hates you, shut up you moron. mail jane.doe@example.com"] * 30
    turns = make_turns(30, text="{i}")
    records = []
    for t, text in zip(turns, texts):
        d = t.model_dump(exclude_none=True)
        d.update(text=text, conversation_id="conv-burst", role="user")
        records.append((b"conv-burst", json.dumps(d).encode()))
    asyncio.run(_feed(app, records, len(records)))
    candidates = [alert_from_json(v) for _, v, _ in app.captured["alerts"].sent]
    assert len(candidates) == 30 and {a.kind for a in candidates} == {"toxic_turn"}
    assert len({a.dedup_key for a in candidates}) == 1  # grouped by conversation
    # the page quotes the redacted part of the turn that decided it, never raw text or PII
    assert "idiot" in candidates[0].summary and "jane.doe" not in candidates[0].summary
    assert "jane.doe" not in json.dumps(candidates[0].details) and candidates[0].details["evidence"]["excerpt"]

    changelog = []  # (partition, key) of each incidents-table change
    partition_for_key = app.convmon.tables["incidents"].partition_for_key

    def recording(key):
        changelog.append((partition_for_key(key), key))
        return changelog[-1][0]

    monkeypatch.setattr(app.convmon.tables["incidents"], "partition_for_key", recording)
    redelivered = candidates[:5]

    async def deliver():
        async with app.convmon.agents["handle_alerts"].test_context() as agent:
            for i, a in enumerate(candidates + redelivered):  # the last 5 re-delivered
                agent.sent_offset = i // 3  # contiguous offsets in each of the 3 partitions
                await agent.put(json.dumps(a.to_dict(), default=str).encode(), key=a.dedup_key.encode(),
                                partition=i % 3)
            total = Counter()
            for _ in range(1200):  # up to 60 s on a loaded machine; ends as soon as done
                total = sum((Counter(r) for r in agent.results.values()), Counter())
                if sum(total.values()) >= len(candidates) + len(redelivered):
                    break
                await asyncio.sleep(0.05)
            return total

    decisions = asyncio.run(deliver())
    assert decisions == {"notified": 1, "suppressed": 29, "duplicate": 5}  # re-deliveries change nothing
    # each table change goes to the changelog partition of the event that made it, also inside a batch;
    # a re-delivered alert changes nothing
    assert [p for p, _ in changelog] == [i % 3 for i in range(len(candidates))]
    # the one page is in the channel's outbox, keyed by its incident
    (page,) = app.captured["outbox:hook"].sent
    assert page[0] == candidates[0].dedup_key.encode()
    n = outbox.decode(page[1])
    assert (n.status, n.count, n.alert.alert_id) == ("firing", 1, candidates[0].alert_id)

    from convmon.store.clickhouse import connect

    client = connect(app.convmon.runtime.settings.clickhouse)
    rows = client.query("SELECT delivery, count() FROM alerts FINAL GROUP BY delivery ORDER BY delivery").result_rows
    assert rows == [("notified", 1), ("suppressed", 29)]

    # the alert path's hops (alerting/hops.py): every candidate traced to its turn, the one page through the decision
    registry = app.convmon.runtime.metrics.registry
    hops = {hop: registry.get_sample_value("convmon_alert_hop_seconds_count", {"hop": hop})
            for hop in ("score", "alerts_topic", "decide")}
    assert hops == {"score": 30, "alerts_topic": 1, "decide": 1}


def test_score_agent_tracks_conversations_raises_one_shift_and_ignores_replays(app):
    """Dynamics run in the score stage: a friendly conversation that turns hostile gives one sentiment_shift
    candidate, the re-delivered tail changes nothing, and the table change goes to the turn's partition."""
    from convmon.wire import decode_alert_record as alert_from_json

    texts = ["thanks so much, this is wonderful and exactly what I needed!",
             "I'm really glad it helped, have a lovely day!",
             "great, you are brilliant, I love how clear this is",
             "happy to help, enjoy your trip!",
             "you are a useless idiot and I hate you, this is garbage, shut up",
             "you worthless moron, everything you say is stupid garbage"]
    turns = make_turns(len(texts), text="{i}")
    records = []
    for i, (t, text) in enumerate(zip(turns, texts)):
        d = t.model_dump(exclude_none=True)
        d.update(text=text, conversation_id="conv-shift", turn_index=i, role="user" if i % 2 == 0 else "assistant")
        records.append((b"conv-shift", json.dumps(d).encode()))
    asyncio.run(_feed(app, records + records[3:], len(records) + 3))  # the tail re-delivered

    shifts = [a for a in (alert_from_json(v) for _, v, _ in app.captured["alerts"].sent) if a.kind == "sentiment_shift"]
    assert len(shifts) == 1
    a = shifts[0]
    assert a.turn_index == 4 and a.conversation_id.startswith("ps_")  # pseudonymised, as everywhere downstream
    assert a.details["before"] > 0 > a.details["after"]
    (stored,) = [v for _, v in app.convmon.tables["conversations"].items()]
    assert stored["last_turn_index"] == 5 and stored["_partition"] == 0


def test_a_turn_without_a_key_goes_back_keyed_by_its_conversation(app):
    """The contract asks for key = conversation_id; a valid turn without one is re-published keyed, not scored
    on this partition (its conversation's dynamics live with that key's partition)."""
    (t,) = make_turns(1)
    assert asyncio.run(_feed(app, [(None, _raw(t))], 1)) == 1
    assert app.captured["turns"].sent == [(t.conversation_id.encode(), _raw(t), {})]
    assert app.captured["scores"].sent == [] and app.captured["dlq"].sent == []


def test_skipped_offsets_are_read_again(app, monkeypatch):
    """The consumer can skip fetched records around a rebalance (faust-streaming #596): the agent notices
    the jump in offsets and seeks back to the first skipped record, once."""
    seeks = []

    async def seek(tp, offset):
        seeks.append((tp.partition, offset))

    monkeypatch.setattr(app.consumer, "seek", seek)
    turns = make_turns(30)

    async def feed():
        async with app.convmon.agents["score_turns"].test_context() as agent:
            for i, t in enumerate(turns):
                if i == 20:
                    agent.sent_offset += 7  # offsets 20..26 never reach the agent
                await agent.put(_raw(t), key=t.conversation_id.encode(), partition=0)
            for _ in range(1200):  # up to 60 s on a loaded machine; ends as soon as done
                if sum(agent.results.values()) >= len(turns):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)

    asyncio.run(feed())
    assert seeks == [(0, 20)]
    metrics = app.convmon.runtime.metrics.registry
    assert metrics.get_sample_value("convmon_offset_gaps_total", {"topic": app.convmon.topics.turns.get_topic_name()}) == 1


def test_model_state_agent_dead_letters_what_is_not_a_signal_record_and_goes_on(app):
    """A broken or hostile producer on convmon.signals: each bad record reaches the DLQ with its reason, and the
    good records around it are applied (garbage used to crash the model-state agent)."""
    from convmon.wire import Signal, encode_signals

    good = [Signal(("a", "m", "v1", "user"), 1.8e9 + i, f"e{i}", 0.1, 0.2, 0.0, False, False, False, False)
            for i in range(4)]
    ((key, value),) = encode_signals(good)
    entry = json.loads(value)["signals"][0]
    bad = [b"{not json", b"[1, 2]", json.dumps({"v": 2, "key": ["a", "m"], "signals": [entry]}).encode(),
           json.dumps({"v": 2, "key": ["a", "m", "v1", "user"], "signals": [dict(entry, toxicity=7)]}).encode(),
           json.dumps({"v": 2, "key": ["a", "m", "v1", "user"], "signals": [dict(entry, embedding="AAAA")]}).encode(),
           json.dumps({"v": 2, "key": ["a", "m", "v1", "user"], "signals": []}).encode()]

    async def feed():
        async with app.convmon.agents["model_state"].test_context() as agent:
            for v in bad[:3] + [value] + bad[3:]:
                await agent.put(v, key=key)
            for _ in range(1200):  # up to 60 s on a loaded machine; ends as soon as done
                if sum(agent.results.values()) >= len(bad) + 1:
                    break
                await asyncio.sleep(0.05)

    asyncio.run(feed())
    dead = app.captured["dlq"].sent
    assert [v for _, v, _ in dead] == bad and {h["convmon.reason"] for _, _, h in dead} == {b"invalid_signal_record"}
    assert app.convmon.model_state.rates.turns[("a", "m", "v1", "user")] == 4


def test_model_state_agent_resumes_json_snapshots_and_never_unpickles_stored_rows(app, tmp_path):
    """At start the model-state agent restores every stored snapshot from ClickHouse: a valid JSON one
    resumes its key (counters carry on), a legacy pickle row (here one that would write a file) is skipped
    unread, counted, and replaced by the key's first JSON snapshot."""
    from convmon.state.model_state import ModelState
    from convmon.alerting.rules import RuleSet
    from convmon.state.drift import DriftMonitor
    from convmon.state.rates import RateMonitor
    from convmon.state.windows import MinuteWindows
    from convmon.store.clickhouse import connect
    from convmon.store.migrate import migrate
    from tests.unit.test_model_state import KEY, rec
    from tests.unit.test_state_snapshot import legacy_row

    old_key = (KEY[0], KEY[1], "2023-01-01", KEY[3])
    before = ModelState(DriftMonitor(), RateMonitor(), MinuteWindows(clock=LATER), RuleSet.load())
    before.process(as_signals([dict(rec(1_800_000_000 + i, tox_hit=i % 4 == 0), id=f"b{i}", _p=7, _o=i) for i in range(80)]))
    target = tmp_path / "pwned"
    client = connect(app.convmon.runtime.settings.clickhouse)
    migrate(client)
    client.insert("model_state_snapshots",
                  [[*KEY, 0, 80, before.snapshot(KEY).decode()], [*old_key, 0, 5, legacy_row(target)]],
                  column_names=["app", "model_name", "model_version", "role", "taken_at", "turns", "state"])

    after = [dict(rec(1_800_000_100 + i), id=f"a{i}") for i in range(20)]
    after += [dict(rec(1_800_000_100 + i), id=f"o{i}", k=list(old_key)) for i in range(10)]

    async def feed():
        async with app.convmon.agents["model_state"].test_context() as agent:
            for r in after:
                await agent.put(json.dumps(r).encode(), key="|".join(r["k"]).encode())
            for _ in range(1200):  # up to 60 s on a loaded machine; ends as soon as done
                if sum(agent.results.values()) >= len(after):
                    break
                await asyncio.sleep(0.05)
            return sum(agent.results.values())

    assert asyncio.run(feed()) == len(after)
    assert not target.exists()
    state = app.convmon.model_state
    assert state.rates.turns[KEY] == 80 + 20  # resumed from the JSON snapshot, every turn once
    assert state.rates.turns[old_key] == 10  # the pickled state was not used: the key started fresh
    registry = app.convmon.runtime.metrics.registry
    assert registry.get_sample_value("convmon_snapshot_rejected_total", {"reason": "legacy_pickle"}) == 1
    assert registry.get_sample_value("convmon_snapshot_rejected_total", {"reason": "invalid"}) == 0
    rows = client.query("SELECT model_version, turns, state FROM model_state_snapshots FINAL").result_rows
    assert {v: n for v, n, _ in rows} == {KEY[2]: 100, old_key[2]: 10}
    assert all(json.loads(s)["v"] == 1 for _, _, s in rows)  # the pickle row is replaced by JSON



def test_a_resolved_incident_is_forgotten_through_the_stream_and_a_stale_request_is_ignored(app):
    """Security finding 5: incidents were never deleted. The sweep asks (a control record on chat.alerts), the
    agent deletes the key in its own changelog partition; a request for an incident that reopened meanwhile
    changes nothing."""
    from convmon.wire import ForgetIncident
    from convmon.alerting.model import Alert

    def alert(key, status="firing", n=0):
        return json.dumps(Alert(kind="toxic_turn", severity="warning", summary="s", dedup_key=key, status=status,
                                alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}-{status}-{n}"))).to_dict(),
                          default=str).encode()

    async def run():
        async with app.convmon.agents["handle_alerts"].test_context() as agent:
            for key in ("gone", "kept"):
                await agent.put(alert(key), key=key.encode())
                await agent.put(alert(key, "resolved"), key=key.encode())
            await asyncio.sleep(0.3)
            resolved_at = {k: app.convmon.tables["incidents"][k]["resolved_at"] for k in ("gone", "kept")}
            await agent.put(alert("kept", n=1), key=b"kept")  # reopened before the sweep's request arrives
            await agent.put(ForgetIncident("gone", resolved_at["gone"]).encode()[1], key=b"gone")
            await agent.put(ForgetIncident("kept", resolved_at["kept"]).encode()[1], key=b"kept")
            await asyncio.sleep(0.3)
            return dict(app.convmon.tables["incidents"].items())

    table = asyncio.run(run())
    assert "gone" not in table
    assert table["kept"]["status"] == "open"


def test_incident_retention_respects_the_cooldown_and_the_index_tracks_only_live_incidents():
    from convmon.alerting.incidents import IncidentBook, IncidentIndex
    from convmon.alerting.model import Alert
    from convmon.alerting.rules import RuleSet

    book = IncidentBook(RuleSet.load())
    a = Alert(kind="toxic_turn", severity="warning", summary="s", dedup_key="k", app="a")
    st, _ = book.offer(None, a, now=1000)
    st, _ = book.offer(st, Alert(**{**a.to_dict(), "ts": a.ts, "status": "resolved", "alert_id": "r"}), now=2000)
    assert not book.expired(st, now=2000 + 60, retention_s=60)  # toxic_turn's cooldown is 900 s
    assert book.expired(st, now=2000 + 900, retention_s=60)
    assert not book.expired(st, now=2000 + 3000, retention_s=86400)

    index = IncidentIndex(rebuild_every=3)
    index.rebuild([("k", st), ("o", {"status": "open"}), ("x", None)], generation=1)
    assert index.open == {"o"} and index.resolved == {"k": 2000}
    index.note("o", None)
    assert index.open == set() and index.resolved_before(2500) == ["k"]
    assert [index.needs_rebuild(1) for _ in range(3)] == [False, False, True]
    assert index.needs_rebuild(2)  # a rebalance


def test_a_record_on_chat_alerts_that_is_not_an_alert_is_dead_lettered_and_alerting_goes_on(app):
    """A non-UUID alert_id made the alerts agent retry its ClickHouse insert forever (noticed in session 3)."""
    from convmon.alerting.model import Alert

    good = Alert(kind="toxic_turn", severity="warning", summary="s", dedup_key="k-good")
    bad = json.dumps({**good.to_dict(), "alert_id": "1; DROP TABLE alerts", "dedup_key": "k-bad"},
                     default=str).encode()

    async def run():
        async with app.convmon.agents["handle_alerts"].test_context() as agent:
            await agent.put(bad, key=b"k-bad")
            await agent.put(json.dumps(good.to_dict(), default=str).encode(), key=b"k-good")
            for _ in range(200):
                if "k-good" in app.convmon.tables["incidents"]:
                    break
                await asyncio.sleep(0.05)
            return dict(app.convmon.tables["incidents"].items())

    table = asyncio.run(run())
    assert "k-good" in table and "k-bad" not in table
    ((key, value, headers),) = app.captured["dlq"].sent
    assert value == bad and headers["convmon.reason"] == b"invalid_alert_record"
    assert len(app.captured["outbox:hook"].sent) == 1  # the good alert paged


def test_batches_scored_side_by_side_are_stored_and_published_in_the_order_read(app, monkeypatch):
    """Up to three batches are in flight (one prepared while the encoder runs another): a first batch that
    scores slower than the next must still be tracked, published and stored first."""
    import threading
    import time as _time

    rt = app.convmon.runtime
    process = rt.processor.process
    spans = []

    def slow_first(records):
        t0 = _time.monotonic()
        if records[0].offset == 0:
            _time.sleep(1.0)  # the first batch: as if its encoder call were slow
        out = process(records)
        spans.append((records[0].offset, t0, _time.monotonic(), threading.current_thread().name))
        return out

    monkeypatch.setattr(rt.processor, "process", slow_first)
    turns = make_turns(48)

    async def feed():
        async with app.convmon.agents["score_turns"].test_context() as agent:
            for i, t in enumerate(turns):
                await agent.put(_raw(t), key=t.conversation_id.encode(), partition=0)
                if i % 16 == 15:
                    await asyncio.sleep(0.2)  # three batches of 16
            for _ in range(1200):
                if len(app.captured["scores"].sent) >= len(turns):
                    break
                await asyncio.sleep(0.05)

    asyncio.run(feed())
    published = [json.loads(v)["event_id"] for _, v, _ in app.captured["scores"].sent]
    assert published == [t.event_id for t in turns]  # in the order read, though batch 2 was scored first
    first = next(s for s in spans if s[0] == 0)
    assert any(s[1] < first[2] and s[3] != first[3] for s in spans if s[0] != 0), spans  # side by side
    from convmon.store.clickhouse import connect

    client = connect(rt.settings.clickhouse)
    assert client.query("SELECT count() FROM turns FINAL").result_rows[0][0] == 48
