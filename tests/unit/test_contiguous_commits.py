"""The consumer's commits never pass a record that was read past but not processed (stream/consumer.py).

Faust's own consumer treats any jump in offsets as room taken by transaction markers and commits
over it; these tests drive the real Faust consumer class (no broker: commit offsets are computed
locally) and would fail against it."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP

from convmon.stream.consumer import App

TP2 = TP("chat.turns", 2)


@pytest.fixture()
def consumer(tmp_path):
    app = App("contiguous-test", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path),
              web_enabled=False, autodiscover=False)
    c = app.consumer
    assert type(c).__name__.startswith("Contiguous")
    c._committed_offset[TP2] = 445
    return c


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def ack(c, offsets):
    for o in offsets:
        c._acked[TP2].append(o)
        c._acked_index[TP2].add(o)


def test_a_jump_seen_by_the_fetch_loop_does_not_let_the_commit_pass_it(consumer):
    run(consumer._add_gap(TP2, 445, 499))  # what Faust's fetch loop calls when 500 follows 444
    ack(consumer, range(500, 600))
    assert consumer._new_offset(TP2) is None  # 445..499 are still owed


def test_once_the_skipped_records_are_processed_the_commit_moves_over_all(consumer):
    ack(consumer, range(500, 600))
    assert consumer._new_offset(TP2) is None
    ack(consumer, range(445, 500))  # the re-read
    assert consumer._new_offset(TP2) == 600


def test_a_single_missing_record_holds_the_commit(consumer):
    """Faust's check lets exactly one missing record through (off by one); ours does not."""
    ack(consumer, range(446, 500))
    assert consumer._new_offset(TP2) is None


def test_a_hole_confirmed_by_the_reread_is_committed_over(consumer):
    ack(consumer, range(500, 600))
    run(consumer.accept_gap(TP2, 445, 499))
    assert consumer._new_offset(TP2) == 600


def test_after_a_rebalance_a_finished_partition_is_seen_at_its_high_watermark_not_past_it(consumer, monkeypatch):
    """Issue 20, the cause: Faust's perform_seek (every assignment) stored the offset to read *next* in
    `_read_offset`, where the fetch loop stores the last offset read; the watchdog read 5904 of 5903."""
    from convmon.stream import watchdog

    async def seek_to_committed():
        return {TP2: 5903}

    async def no_seek(tp, offset):
        return None

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    monkeypatch.setattr(consumer, "_seek", no_seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {TP2})
    monkeypatch.setattr(consumer, "highwater", lambda tp: 5903)
    app = consumer.app
    run(consumer.perform_seek())
    assert consumer._committed_offset[TP2] == 5903
    view = watchdog._partitions(app, {"chat.turns"})[TP2]
    assert (view.position, view.highwater, view.committed) == (5903, 5903, 5903)
    run(consumer.seek(TP2, 5900))  # the watchdog's and the re-read's seek back
    assert watchdog._partitions(app, {"chat.turns"})[TP2].position == 5900


def test_the_fetch_loop_takes_the_record_at_the_sought_offset_and_counts_no_jump(consumer, monkeypatch):
    """The fetch loop keeps a record when offset >= _read_offset and sees a jump when offset - _read_offset > 1."""
    async def no_seek(tp, offset):
        return None

    monkeypatch.setattr(consumer, "_seek", no_seek)
    run(consumer.seek(TP2, 445))
    r = consumer._read_offset[TP2]
    assert 445 >= r and 445 - r == 1  # taken, not a jump
    assert 444 >= r  # a record in flight from before the seek is taken again too (writes are idempotent)
    run(consumer.seek(TP2, 0))
    assert consumer._read_offset[TP2] is None  # Faust's "nothing read yet"


def broker(consumer, monkeypatch, outcomes: list[bool]) -> list[dict]:
    """The transport's commit answers `outcomes` in turn (False: the broker is away); returns what was sent."""
    sent = []

    async def commit(offsets):
        sent.append(dict(offsets))
        return outcomes.pop(0)

    async def flush():
        return None

    monkeypatch.setattr(consumer, "_commit", commit)
    monkeypatch.setattr(consumer.app.producer, "flush", flush)
    monkeypatch.setattr(consumer, "assignment", lambda: {TP2})
    return sent


def commit(consumer) -> bool:
    return run(consumer._commit_tps([TP2], start_new_transaction=False))


def test_a_commit_that_fails_while_the_broker_is_away_is_made_again_with_the_next_one(consumer, monkeypatch):
    """Faust takes a failed commit for done: it records the offset as committed after dropping the acks, so a
    partition that gets nothing new never commits it (stall warnings after the chaos run's broker restart)."""
    sent = broker(consumer, monkeypatch, [False, True])
    ack(consumer, range(445, 500))
    assert commit(consumer) is False
    assert sent == [{TP2: 500}]
    assert consumer._committed_offset[TP2] == 445  # not taken for done
    from convmon.stream import watchdog

    monkeypatch.setattr(consumer, "highwater", lambda tp: 500)
    consumer._read_offset[TP2] = 499
    view = watchdog._partitions(consumer.app, {"chat.turns"})[TP2]
    assert view.committed == 445 and view.committed_in_hand  # processed, only the commit owed: not a stall
    # the broker is back and nothing new was read: the next commit alone must carry it
    assert commit(consumer) is True
    assert sent[-1] == {TP2: 500} and consumer._committed_offset[TP2] == 500
    assert commit(consumer) is False  # and then nothing is owed
    assert len(sent) == 2


def test_a_failed_commit_is_overtaken_by_later_acknowledgements(consumer, monkeypatch):
    sent = broker(consumer, monkeypatch, [False, True])
    ack(consumer, range(445, 500))
    commit(consumer)
    ack(consumer, range(500, 520))
    assert commit(consumer) is True
    assert sent == [{TP2: 500}, {TP2: 520}] and consumer._committed_offset[TP2] == 520


def test_acks_that_arrive_after_a_revocation_do_not_let_the_commit_pass_unprocessed_records(consumer, monkeypatch):
    """Faust forgets a revoked partition's committed offset and acks before its App waits for the events in flight
    and commits (wait_empty). Those late acks, after records that were skipped and not yet re-read, must not
    carry the commit over the skipped records (a chaos run lost turns/0 5797..6230 this way)."""
    seen = []

    async def app_revoked(revoked):
        ack(consumer, range(500, 600))  # the events in flight finish while the App waits for them
        seen.append(consumer._new_offset(TP2))  # what wait_empty's commit would send
        ack(consumer, range(445, 500))  # had the skipped records been processed, the commit may pass them
        seen.append(consumer._new_offset(TP2))

    monkeypatch.setattr(consumer, "_on_partitions_revoked", app_revoked)
    run(consumer.on_partitions_revoked({TP2}))
    assert seen == [None, 600]
