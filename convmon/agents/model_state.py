"""Agent: convmon.signals → per-model-version state (convmon/state/model_state.py) → ClickHouse + chat.alerts.

Signals are keyed by app|model|version|role (one record per key and scored batch), so every turn of a
model version meets in one partition and one worker. The state runs on its own thread, off the event loop. Every key a batch
changed is snapshotted to ClickHouse before the batch's offsets commit (state/model_state.py SnapshotKeeper),
so a worker killed without warning resumes with every committed signal counted once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import faust

from .. import wire
from ..batch import dlq_max_bytes
from ..state.model_state import ModelState, SnapshotKeeper, read_signals
from ..store.model_state import result_rows
from ..stream.runner import dead_letter, micro_batches, off_loop, raw_records, send_all, store_all


def register(app: faust.App) -> None:
    rt = app.convmon.runtime
    cfg = rt.settings.worker
    dlq_bytes = dlq_max_bytes(cfg.max_record_bytes)
    state = app.convmon.model_state = ModelState.from_settings(cfg, rt.rules)
    executor = ThreadPoolExecutor(1, thread_name_prefix="convmon-state")

    async def on_state_thread(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    keeper = SnapshotKeeper(state, rt.sink, on_state_thread, rt.metrics)

    @app.agent(app.convmon.topics.signals, name="convmon.model_state", concurrency=1)
    async def model_state(stream):
        await rt.sink.open()
        await keeper.start()
        # its own, longer window: a batch's fixed cost (snapshots, inserts) would otherwise take CPU from scoring
        async for events in micro_batches(app, stream, cfg.batch_size, cfg.state_batch_within_s, rt.metrics):
            signals, dead = read_signals(raw_records(events))
            # not signal records (a broken or hostile producer): dead-lettered, the state goes on
            await dead_letter(app.convmon.topics.dlq, dead, dlq_bytes, rt.metrics, "signal records")
            await keeper.restore_new(m.key for m in signals)
            out = await off_loop(executor, rt.metrics, "state_and_drift", state.process, signals)
            # Every key this batch changed is snapshotted before the batch's offsets are committed (they are
            # acknowledged when the agent asks for the next batch): a worker killed without warning resumes from
            # a snapshot that holds every signal it committed, and re-reads the rest.
            await keeper.save(out["snapshots"])
            # bounded memory: keys beyond the cap or idle past the TTL wait in ClickHouse until they come again
            keeper.evicted(await on_state_thread(state.evict))
            rt.metrics.state_keys.set(len(state.touched))
            rt.metrics.state_turns.labels("applied").inc(out["applied"])
            rt.metrics.state_turns.labels("redelivered").inc(out["redelivered"])
            await store_all(rt.sink, result_rows(out))
            await send_all((app.convmon.topics.alerts, *wire.encode_alert(a)) for a in out["alerts"])
            yield len(events)

    @app.timer(max(1.0, cfg.window_idle_flush_s / 4))
    async def flush_quiet_windows():
        rows = await on_state_thread(state.flush_idle)
        await store_all(rt.sink, {"window_stats": rows})

    @app.on_before_shutdown.connect
    async def _snapshot_on_shutdown(app, **kwargs):
        # on the state thread, so it waits for a batch being applied instead of reading it half-done
        await keeper.save(await on_state_thread(state.due_snapshots, True))
        # the minute windows still open, written as they stand (replaced by their final rows when they close)
        rows = await on_state_thread(state.windows.provisional)
        await store_all(rt.sink, {"window_stats": rows})

    app.convmon.agents["model_state"] = model_state
