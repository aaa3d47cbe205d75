import asyncio
import uuid

import pytest

from convmon.contract import ChatTurn
from convmon.scoring.pii import PiiScorer
from convmon.scoring.pipeline import ScoringPipeline
from convmon.store.clickhouse import StoreError, connect
from convmon.store.migrate import available, migrate
from convmon.store.sink import StoreSink
from convmon.store.turns import TurnStore


def make_turns(n, conv="c", text="hello {i}, mail me: u{i}@example.com"):
    return [
        ChatTurn.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "conversation_id": f"{conv}{i % 7}",
                "turn_index": i,
                "role": "user" if i % 2 == 0 else "assistant",
                "text": text.format(i=i),
                "ts": "2026-11-28T17:00:00.000Z",
                "app": "app-a",
                "model": {"provider": "p", "name": "m", "version": "v1"},
                "prompt": {"template_id": "tpl", "version": "3"},
            }
        )
        for i in range(n)
    ]


def scored(n, **kw):
    return ScoringPipeline([PiiScorer()]).score(make_turns(n, **kw))


def count(client, final=True):
    return client.query(f"SELECT count() FROM turns{' FINAL' if final else ''}").result_rows[0][0]


def test_migrate_is_idempotent_and_versioned(client):
    first = migrate(client)
    assert [m.version for m in first] == [m.version for m in available()] and first
    assert migrate(client) == []
    versions = [r[0] for r in client.query("SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows]
    assert versions == [m.version for m in available()]


def test_rows_round_trip_with_lineage_and_redaction(client):
    migrate(client)
    rows = scored(20)
    TurnStore(client).write(rows)
    r = client.query(
        "SELECT app, model_version, prompt_template_id, prompt_version, pii, text_redacted, text_raw, scorer_version "
        "FROM turns FINAL WHERE turn_index = 3"
    ).result_rows[0]
    assert r[:4] == ("app-a", "v1", "tpl", "3")
    assert r[4] == ["email"] and r[5] == "hello 3, mail me: [EMAIL]" and r[6] is None
    assert r[7] == "pii-2"


def test_redelivered_turns_are_counted_once(client):
    migrate(client)
    store = TurnStore(client, max_rows=50)
    rows = scored(300)
    store.write(rows)
    store.write(rows)  # identical retry: dropped by the insert deduplication token
    store.write(rows[100:200])  # a different batch with re-delivered turns (a restart)
    assert count(client) == 300
    assert count(client, final=False) == 300  # not only after a merge: no copy is written at all
    assert client.query("SELECT uniqExact(event_id) FROM turns").result_rows[0][0] == 300


def from_kafka(rows, partition=0, first_offset=0):
    for i, s in enumerate(rows):
        s.partition, s.offset = partition, first_offset + i
    return rows


def test_turns_stored_before_a_kill_but_not_committed_are_not_stored_again_after_the_restart(client):
    migrate(client)
    rows = from_kafka(scored(300))
    worker = TurnStore(client)  # stores 0..199; its offsets were committed up to 100 when it was killed
    worker.write(rows[:100]), worker.write(rows[100:200])
    restarted = TurnStore(client)  # a new process reads again from 100, in other batch boundaries
    assert [restarted.write(rows[100:150]), restarted.write(rows[150:250]), restarted.write(rows[250:])] == [0, 50, 50]
    assert count(client, final=False) == 300  # raw rows: nothing waits for a merge to be collapsed


def test_a_seek_back_over_stored_offsets_stores_only_the_turns_it_skipped(client):
    migrate(client)
    rows = from_kafka(scored(200), partition=3)
    store = TurnStore(client)
    store.write(rows[:100]), store.write(rows[150:])  # the consumer skipped 100..149 and read on
    assert store.write(rows[100:]) == 50  # the seek back reads the hole and the turns after it again
    assert count(client, final=False) == 200


def test_a_partition_back_from_another_worker_of_the_same_store_is_not_stored_twice(client):
    migrate(client)
    rows = from_kafka(scored(250), partition=2)
    a, b = TurnStore(client), TurnStore(client)  # two workers writing to one ClickHouse server
    a.write(rows[:100])  # a owns partition 2 and commits up to 100; the group rebalances
    b.write(rows[100:200])  # b stores 100..199, commits up to 150 and dies
    assert a.write(rows[150:]) == 50  # the partition is back on a: 150..199 are b's, only 200.. are new
    assert count(client, final=False) == 250


def test_the_store_looks_turns_up_only_where_they_may_have_been_read_again(client):
    migrate(client)
    a, b = from_kafka(scored(200), partition=0), from_kafka(scored(200), partition=1)
    guard = TurnStore(client).guard
    assert len(guard.to_check(a[:50] + b[:50])) == 100  # first sight of both partitions in this process
    guard.stored(a[:50] + b[:50], copies={s.turn.event_id for s in a[:50]})  # partition 0 resumed over stored turns
    assert guard.to_check(a[50:100] + b[50:100]) == a[50:100]  # still resuming on 0; 1 held a new turn: in order
    guard.stored(a[50:100] + b[50:100], copies=set())
    assert guard.to_check(a[100:150] + b[100:150]) == []  # both in order, past everything stored
    assert guard.to_check(b[20:60]) == b[20:60]  # a rewind on 1
    assert guard.to_check(a[180:200]) == a[180:200]  # a jump forward on 0: resumed after a time elsewhere


def test_raw_text_only_on_opt_in(client):
    migrate(client)
    rows = ScoringPipeline([PiiScorer(store_raw_text=True)]).score(make_turns(2))
    TurnStore(client).write(rows)
    raws = [r[0] for r in client.query("SELECT text_raw FROM turns FINAL").result_rows]
    assert all(r and "@example.com" in r for r in raws)


def test_sink_retries_until_the_store_accepts(settings):
    calls = {"n": 0}
    real = connect(settings.clickhouse)

    def flaky_open():
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("clickhouse is down")
        return real

    sink = StoreSink(flaky_open, retry_max_s=0.05)
    rows = scored(10)

    async def go():
        return await asyncio.wait_for(sink.write(rows), 10)

    assert asyncio.run(go()) == 10
    assert calls["n"] == 3 and sink.failures == 0
    assert count(real) == 10
    sink.close_blocking()


def test_server_url_errors_are_clear(settings):
    settings.clickhouse.url = "http://127.0.0.1:1"  # nothing listens there
    with pytest.raises(StoreError, match="cannot reach ClickHouse at http://127.0.0.1:1"):
        connect(settings.clickhouse)
    settings.clickhouse.url = "ftp://x"
    with pytest.raises(StoreError, match="expected chdb://PATH"):
        connect(settings.clickhouse)


def test_an_embedded_store_held_by_another_process_gets_a_clear_error(settings, tmp_path, monkeypatch):
    import subprocess
    import sys

    from convmon.store import clickhouse

    path = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, clickhouse_connect; c = clickhouse_connect.get_client(dsn=sys.argv[1]); "
         "c.command('SELECT 1'); print('open', flush=True); sys.stdin.read()", f"chdb://{path}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        settings.clickhouse.url = f"chdb://{path}"
        with pytest.raises(clickhouse.StoreLocked, match="in use by another process"):
            connect(settings.clickhouse)
        # The other process may take the lock between our check and our open (a worker starting
        # as a CLI command runs): that loser gets the same message, not chdb's raw error.
        real, checks = clickhouse._locked_by_other_process, []
        monkeypatch.setattr(clickhouse, "_locked_by_other_process",
                            lambda p: real(p) if checks.append(p) or len(checks) > 1 else False)
        with pytest.raises(clickhouse.StoreLocked, match="in use by another process"):
            connect(settings.clickhouse)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_turn_resent_with_a_different_ts_is_stored_once(client):
    """Security review finding 10: the sort key held toStartOfHour(ts) (and the partition the month of ts),
    so a retry whose ts crossed an hour was stored twice. Deduplication is on the turn's identity."""
    migrate(client)
    store = TurnStore(client)
    first = make_turns(3)
    resent = [ChatTurn.model_validate({**t.model_dump(mode="json", by_alias=True), "ts": "2026-12-01T00:00:05.000Z"})
              for t in first]  # the same event ids, re-sent across an hour and a month boundary
    store.write(ScoringPipeline([PiiScorer()]).score(first))
    store.write(ScoringPipeline([PiiScorer()]).score(resent))
    assert count(client) == 3
    assert client.query("SELECT uniqExact(event_id) FROM turns").result_rows[0][0] == 3


def test_migration_006_keeps_the_turns_stored_before_it(client):
    """An existing install: turns written under 001's sorting key survive the rebuild, each once."""
    from convmon.store.migrate import _LEDGER

    client.command(_LEDGER)
    for m in available():
        if m.version < 6:
            for stmt in m.statements():
                client.command(stmt)
            client.insert("schema_migrations", [[m.version, m.name]], column_names=["version", "name"])
    from convmon.store.turns import COLUMNS, to_row

    later = ("toxicity_hit", "jailbreak_hit", "language", "language_supported", "evidence")  # added by 007, 008
    old = [i for i, c in enumerate(COLUMNS) if c not in later]  # columns of 001
    client.insert("turns", [[r[i] for i in old] for r in map(to_row, scored(40))],
                  column_names=[COLUMNS[i] for i in old])
    assert [m.version for m in migrate(client)] == [m.version for m in available() if m.version >= 6]
    assert count(client) == 40
    assert "event_id" in client.query("SELECT sorting_key FROM system.tables WHERE name = 'turns' "
                                      "AND database = currentDatabase()").result_rows[0][0]
    assert "ts" not in client.query("SELECT sorting_key FROM system.tables WHERE name = 'turns' "
                                    "AND database = currentDatabase()").result_rows[0][0]


def test_every_typed_row_matches_its_table_as_migrated(client):
    """store/tables.py is the one description of the plain-row tables: a renamed or added column fails here."""
    from convmon.store.tables import ROW_TYPES, columns

    migrate(client)
    for table, row_type in ROW_TYPES.items():
        described = {r[0]: r[2] for r in client.query(f"DESCRIBE TABLE {table}").result_rows}  # name → default kind
        assert set(columns(row_type)) <= set(described), table
        unset = {c: kind for c, kind in described.items() if c not in columns(row_type)}
        assert all(kind in ("DEFAULT", "MATERIALIZED", "ALIAS") for kind in unset.values()), (table, unset)


def test_a_row_of_the_wrong_type_is_refused_before_anything_is_written(client):
    from datetime import datetime, timezone

    from convmon.store.tables import DeadLetterRow, RowStore, WindowRow

    migrate(client)
    store = RowStore(client, WindowRow)
    with pytest.raises(TypeError, match="window_stats takes WindowRow rows, not DeadLetterRow"):
        store.write([DeadLetterRow(datetime.now(timezone.utc), "invalid_json", "t/0@1", 3)])
    assert client.query("SELECT count() FROM window_stats").result_rows[0][0] == 0
