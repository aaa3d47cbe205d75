"""Scale-out on the real broker: two workers in one consumer group share a 4-partition topic;
one dies (SIGKILL) and the other takes over its partitions; every turn is stored.

Each worker here has its own embedded ClickHouse path (chdb: one process per path), so the
check reads both. Within each store every turn is there once; across the two, the turns of the
batch the dead worker had stored but not yet committed are stored again by the survivor
(at-least-once across stores; at most about one commit interval of turns). With a shared ClickHouse server — the scale-out deployment —
those copies collapse on event_id (ReplacingMergeTree), which test_pipeline shows for one store.
"""

from __future__ import annotations

import time

import pytest

from convmon.produce import TurnPublisher

from .conftest import Worker
from .test_pipeline import collect, turn_dicts, wait_for_topic

pytestmark = pytest.mark.e2e


def test_two_workers_split_partitions_and_one_takes_over(e2e):
    e2e.env.update(CONVMON_SCORING__MODELS="false", CONVMON_WORKER__BATCH_SIZE="100", CONVMON_TOPICS__PARTITIONS="4",
                   CONVMON_WORKER__SESSION_TIMEOUT_S="10")
    env2 = dict(e2e.env, CONVMON_VAR=str(e2e.tmp / "var2"))
    w1 = e2e.worker("w1")
    w2 = Worker(env2, e2e.tmp / "w2.log")
    e2e.workers.append(w2)
    wait_for_topic(e2e, e2e.topics["scores"])
    time.sleep(8)  # both members join and the group settles on a 2 + 2 split

    turns = turn_dicts(4000, "scale")
    wanted = {t["event_id"] for t in turns}
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many(turns[:2000])

    seen, _ = collect(e2e, {t["event_id"] for t in turns[:2000]}, 0, timeout=120, workers=[w1, w2])
    assert len(seen) == 2000
    # A fast machine stores a worker's whole share inside one commit interval (1 s); give the commit
    # that follows the write a few intervals, so the kill tests a take-over after committed work.
    time.sleep(3)
    w2.proc.kill()  # dies without warning
    w2.proc.wait(30)
    with TurnPublisher(e2e.bootstrap, e2e.topics["turns"]) as pub:
        pub.publish_many(turns[2000:])
    seen, _ = collect(e2e, wanted, 0, timeout=300, workers=[w1])
    assert wanted <= seen.keys(), w1.tail()
    assert w1.terminate(timeout=60)[0] == 0

    q = "SELECT toString(event_id) AS id, kafka_partition AS p FROM turns FINAL"
    rows1 = e2e.query(q)
    e2e.env = env2
    rows2 = e2e.query(q)
    ids1, ids2 = {r["id"] for r in rows1}, {r["id"] for r in rows2}
    assert len(ids1) == len(rows1) and len(ids2) == len(rows2)  # once within each store
    assert ids1 | ids2 == wanted  # nothing lost
    # both workers worked, on different partitions, before the kill
    assert ids2 and {r["p"] for r in rows2} != {0, 1, 2, 3}
    assert ids1 - ids2  # the survivor took over: it stored turns the dead worker never saw
    takeover_partitions = {r["p"] for r in rows1} & {r["p"] for r in rows2}
    assert takeover_partitions, "the survivor should have consumed the dead worker's partitions"
    # Stored by both: what the dead worker wrote after its last offset commit (commit interval 1 s).
    overlap = ids1 & ids2
    assert len(overlap) < len(ids2), "the survivor re-did everything: offsets were never committed"
    dead_partitions = {r["p"] for r in rows2}
    assert all(r["p"] in dead_partitions for r in rows1 if r["id"] in overlap)
