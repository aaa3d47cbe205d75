"""Agent layer: the real Faust agent, fed through agent.test_context (no broker).

Outbound topic sends are captured in memory (test_context has no producer); the
ClickHouse store is the real embedded engine.
"""

import asyncio
import json

import pytest

from convmon.agents.app import create_app
from tests.unit.test_contract import VALID
from tests.unit.test_store import make_turns


class Captured:
    def __init__(self):
        self.sent = []

    async def send(self, key=None, value=None, headers=None, **kw):
        self.sent.append((key, value, headers or {}))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


@pytest.fixture
def app(settings, monkeypatch):
    settings.worker.batch_size = 16
    settings.worker.batch_within_s = 0.05
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    dlq, scores = Captured(), Captured()
    monkeypatch.setattr(app.dlq_topic, "send", dlq.send)
    monkeypatch.setattr(app.scores_topic, "send", scores.send)
    monkeypatch.setattr(app.dlq_topic, "maybe_declare", _noop)
    monkeypatch.setattr(app.scores_topic, "maybe_declare", _noop)
    app.captured = {"dlq": dlq, "scores": scores}
    yield app
    app.convmon_runtime.sink.close_blocking()


async def _noop():
    return None


def _raw(turn) -> bytes:
    return json.dumps(turn.model_dump(exclude_none=True)).encode()


async def _feed(app, records, expect):
    async with app.score_turns.test_context() as agent:
        for key, value in records:
            await agent.put(value, key=key)
        for _ in range(200):
            if sum(agent.results.values()) >= expect:
                break
            await asyncio.sleep(0.05)
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

    client = connect(app.convmon_runtime.settings.clickhouse)
    assert client.query("SELECT count() FROM turns FINAL").result_rows[0][0] == 40
