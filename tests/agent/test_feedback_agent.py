"""The chat.feedback agent, fed through agent.test_context: labels stored once, bad records dead-lettered."""

import asyncio
import json

from tests.agent.test_turns_agent import app  # noqa: F401 - the fixture
from tests.unit.test_feedback_contract import VALID


def test_labels_are_stored_once_and_a_bad_record_is_dead_lettered_with_its_reason(app):  # noqa: F811
    records = [(b"c-42", json.dumps(VALID).encode()), (b"c-42", json.dumps(VALID).encode()),
               (b"c-42", json.dumps({**VALID, "verdict": "maybe"}).encode()), (None, b"{broken")]

    async def feed():
        async with app.convmon.agents["handle_feedback"].test_context() as agent:
            for key, value in records:
                await agent.put(value, key=key)
            for _ in range(600):
                if len(agent.results) >= 1 and len(app.captured["dlq"].sent) >= 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)

    asyncio.run(feed())
    assert [h["convmon.reason"] for _, _, h in app.captured["dlq"].sent] == [b"schema_violation", b"invalid_json"]
    from convmon.store.clickhouse import connect

    client = connect(app.convmon.runtime.settings.clickhouse)
    rows = client.query("SELECT verdict, signal, note FROM feedback FINAL").result_rows
    assert len(rows) == 1 and rows[0][:2] == ("false_alarm", "toxicity") and "@example.com" not in rows[0][2]
