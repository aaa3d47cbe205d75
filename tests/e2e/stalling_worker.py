"""`convmon worker` with a fault: Kafka fetches silently lose the records of one partition from one offset
on, until that partition is sought — the stall of issue 12 (a partition stopped at offset 94 of 148, nothing
logged, the next worker start processed the backlog). Used by test_faults.py's watchdog test.

    STALL_TOPIC=<topic> STALL_PARTITION=0 STALL_FROM=10 python tests/e2e/stalling_worker.py
"""

from __future__ import annotations

import os
import sys

from faust.transport.consumer import ThreadDelegateConsumer

TOPIC, PARTITION, FROM = os.environ["STALL_TOPIC"], int(os.environ["STALL_PARTITION"]), int(os.environ["STALL_FROM"])
state = {"dropping": None}  # None: not yet, True: losing records, False: healed by a seek

# `_seek` is what every seek comes down to (convmon's consumer overrides `seek` itself: stream/consumer.py)
_getmany, _seek = ThreadDelegateConsumer._getmany, ThreadDelegateConsumer._seek


async def getmany(self, active_partitions, timeout):
    records = await _getmany(self, active_partitions, timeout)
    for tp in list(records):
        if tp.topic == TOPIC and tp.partition == PARTITION and state["dropping"] is not False:
            kept = [r for r in records[tp] if r.offset < FROM]
            if len(kept) < len(records[tp]):
                if not state["dropping"]:
                    print(f"FAULT: losing fetched records of {TOPIC}/{PARTITION} from offset {FROM}", flush=True)
                state["dropping"] = True
            records[tp] = kept
    return records


async def seek(self, partition, offset):
    if partition.topic == TOPIC and partition.partition == PARTITION and state["dropping"]:
        state["dropping"] = False
        print(f"FAULT: healed by a seek of {TOPIC}/{PARTITION} to {offset}", flush=True)
    return await _seek(self, partition, offset)


ThreadDelegateConsumer._getmany = getmany
ThreadDelegateConsumer._seek = seek

if __name__ == "__main__":
    from convmon.cli import main

    sys.argv = ["convmon", "worker"]
    main()
