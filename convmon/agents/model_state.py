"""Agent: convmon.signals → per-model-version state: embedding drift, signal-rate drift, 1-minute aggregates.

The score agent publishes one compact signal record per scored turn (scores + float16
embedding), keyed by app|model|version|role, so every turn of a model version meets in one
partition and one worker. The state is plain code (convmon/state/): DriftMonitor, RateMonitor,
MinuteWindows; it runs off the event loop on one thread. Pinned drift references are stored
in ClickHouse (`drift_baselines`) and reloaded when a worker starts, so a restart keeps the
reference; the per-key state (windows, rate detectors, the live drift window) is snapshotted to
ClickHouse with every batch, before the batch's offsets are committed, so a worker killed
without warning resumes with every committed signal counted once. Alerts are deduplicated
downstream by the incidents table, so a restart pages nobody twice.

Snapshots are plain, versioned JSON (convmon/state/snapshot.py), read back as untrusted input: a
row that does not parse (including the base64 pickles of older versions, which are never
unpickled) is skipped, logged without its contents and counted in convmon_snapshot_rejected_total.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import faust
import numpy as np

from ..alerting.model import Alert
from ..state.drift import DriftConfig, DriftMonitor, Reference
from ..state import snapshot as snapshots
from ..state.rates import RateMonitor
from ..state.windows import MinuteWindows
from ..store.drift import baseline_row, report_row
from .alerts import alert_to_json
from .rereads import Rereader

log = logging.getLogger(__name__)
RECENT_IDS = 4096  # per key: covers any batch that can be re-delivered before its offsets are committed


def signal_record(scored, thresholds: dict) -> tuple[bytes, bytes]:
    """(key, value) of the signal record for one ScoredTurn."""
    t, f = scored.turn, scored.scores
    key = "|".join((t.app, t.model.name, t.model.version, t.role))
    emb = scored.extras.get("embedding")
    value = {
        "k": [t.app, t.model.name, t.model.version, t.role],
        "ts": t.timestamp.timestamp(),
        "id": t.event_id,
        "tox": f.get("toxicity"),
        "sent": f.get("sentiment"),
        "jb": f.get("jailbreak"),
        "tox_hit": f.get("toxicity") is not None and f["toxicity"] >= thresholds.get("toxicity", 1.1),
        "jb_hit": f.get("jailbreak") is not None and f["jailbreak"] >= thresholds.get("jailbreak", 1.1),
        "pol_hit": bool(f.get("policy_hits")),
        "pii": bool(f.get("pii")),
        "emb": base64.b64encode(np.asarray(emb, np.float16).tobytes()).decode() if emb is not None else None,
    }
    return key.encode(), json.dumps(value).encode()


class ModelState:
    """Plain state holder; `process(records)` returns rows to store and alerts to raise."""

    def __init__(self, drift: DriftMonitor, rates: RateMonitor, windows: MinuteWindows, rules,
                 snapshot_every: int = 50, max_keys: int = 10_000, idle_ttl_s: float = 24 * 3600,
                 clock=time.time):
        self.drift, self.rates, self.windows, self.rules = drift, rates, windows, rules
        # Memory holds at most max_keys model versions, none idle for longer than idle_ttl_s: the rest live
        # in their ClickHouse snapshots and are restored when a signal of theirs comes (see evict()).
        self.max_keys, self.idle_ttl_s, self.clock = max_keys, idle_ttl_s, clock
        self.touched: "OrderedDict[tuple, float]" = OrderedDict()  # key → wall time of its last signal, LRU order
        self.pinned: list[Reference] = []
        self.drift.on_pin = self.pinned.append
        self.snapshot_every = snapshot_every
        self.unsaved: dict[tuple, int] = {}  # key → turns since its last snapshot
        # key → (partition, offset) of the last signal applied: a snapshot can be ahead of the committed
        # Kafka offsets, so signals re-delivered after a restart are skipped instead of counted twice
        self.applied: dict[tuple, tuple[int, int]] = {}
        # key → recent event ids: a turn re-scored after a rebalance is re-published with a NEW signal offset
        self.recent: dict[tuple, "OrderedDict[str, None]"] = {}

    # -- snapshots: one key's whole state, so another worker (or this one after a restart) resumes it
    def snapshot(self, key: tuple) -> bytes:
        """The key's state as a versioned JSON document (convmon/state/snapshot.py)."""
        return snapshots.dump(key, drift=self.drift.to_snapshot(key), rates=self.rates.to_snapshot(key),
                              windows=self.windows.to_snapshot(key), applied=self.applied.get(key),
                              recent=list(self.recent.get(key, {})))

    def restore(self, key: tuple, raw: "str | bytes") -> None:
        """Resume a key from a stored snapshot. Raises SnapshotError (reason: see codec.REASONS) and changes
        nothing when the row is not a valid snapshot of this key; never executes anything from it."""
        key = tuple(key)
        snap = snapshots.load(raw, key, self.drift)  # parsed and checked whole before anything is installed
        if snap.drift is not None:
            self.drift.restore(snap.drift)
        if snap.rates is not None:
            self.rates.restore(key, snap.rates)
        if snap.windows is not None:
            self.windows.restore(key, snap.windows)
        if snap.applied is not None:
            self.applied[key] = snap.applied
        self.recent[key] = snapshots.recent_ids(snap, RECENT_IDS)
        self.touched[key] = self.clock()
        self.touched.move_to_end(key)

    def due_snapshots(self, force: bool = False) -> list[tuple[tuple, int, bytes]]:
        """Snapshots of the keys changed since their last stored one (all of them with `force`). A key stays
        due until `saved()` confirms the write, so a write cut short (shutdown, error) is retried."""
        keys = [k for k, n in self.unsaved.items() if force or n >= self.snapshot_every]
        return [(k, self.rates.turns.get(k, 0), self.snapshot(k)) for k in keys]

    def saved(self, due: list[tuple[tuple, int, bytes]]) -> None:
        """The snapshots in `due` are stored: their keys are clean until the next signal changes them."""
        for k, _, _ in due:
            self.unsaved.pop(k, None)

    def process(self, records: list[dict]) -> dict:
        reports, alerts = [], []
        applied = 0
        for m in records:
            key = tuple(m["k"])
            ts = m["ts"]
            pos = (m.get("_p"), m.get("_o"))
            if pos[1] is not None:
                done = self.applied.get(key)
                if done is not None and done[0] == pos[0] and pos[1] <= done[1]:
                    continue  # already in this state (re-delivered after a restart)
                self.applied[key] = pos
            recent = self.recent.setdefault(key, OrderedDict())
            if m.get("id") in recent:
                continue  # the same turn, scored and published again (at-least-once upstream)
            recent[m.get("id")] = None
            if len(recent) > RECENT_IDS:
                recent.popitem(last=False)
            applied += 1
            self.unsaved[key] = self.unsaved.get(key, 0) + 1
            self.touched[key] = self.clock()
            self.touched.move_to_end(key)
            self.windows.add(key, ts, m["tox"], m["sent"], m["jb_hit"], m["pol_hit"], m["pii"])
            for ch in self.rates.update(key, {"toxicity": float(m["tox_hit"]) if m["tox"] is not None else None,
                                              "jailbreak": float(m["jb_hit"]) if m["jb"] is not None else None,
                                              "policy": float(m["pol_hit"]) if m["tox"] is not None else None,
                                              "sentiment": m["sent"]}):
                alerts += self._rate_alert(key, ch, m)
            if m.get("emb"):
                emb = np.frombuffer(base64.b64decode(m["emb"]), dtype=np.float16).astype(np.float32)
                when = datetime.fromtimestamp(ts, tz=timezone.utc)
                scores = {"toxicity": m["tox"], "sentiment": m["sent"], "jailbreak": m["jb"]}
                r = self.drift.update(key, emb, when, scores)
                if r is not None:
                    ref = self.drift.reference(r.baseline_key or key)
                    reports.append((r, ref.embeddings.shape[0] if ref is not None else 0))
                    self.windows.note_drift(key, ts, r.statistics.get("centroid", 0.0))
                    alerts += self._drift_alert(key, r, m)
        pinned, self.pinned[:] = list(self.pinned), []
        touched = {tuple(m["k"]) for m in records}
        return {"reports": reports, "alerts": alerts, "windows": self.windows.close(keys=touched), "pinned": pinned,
                "snapshots": self.due_snapshots(), "applied": applied, "redelivered": len(records) - applied}

    def evict(self) -> list[tuple]:
        """Forget the least recently used keys beyond max_keys and every key idle for idle_ttl_s, but only
        keys whose latest state is stored (not in `unsaved`), so nothing is lost: the caller restores an
        evicted key from its snapshot when it comes back. Returns the keys forgotten."""
        now, out = self.clock(), []
        for key, last in self.touched.items():  # oldest first; stops at the first key to keep (no full copy)
            if len(self.touched) - len(out) <= self.max_keys and now - last < self.idle_ttl_s:
                break
            if key in self.unsaved:
                continue
            out.append(key)
        for key in out:
            self.forget(key)
        return out

    def forget(self, key: tuple) -> None:
        self.drift.forget(key)
        self.rates.forget(key)
        self.windows.forget(key)
        for d in (self.applied, self.recent, self.unsaved, self.touched):
            d.pop(key, None)

    def flush_idle(self) -> list:
        """Window rows of the model versions that went quiet (MinuteWindows.idle_flush_s)."""
        return self.windows.close(keys=())

    def _ctx(self, key, m) -> dict:
        return {"app": key[0], "model_name": key[1], "model_version": key[2], "role": key[3],
                "ts": datetime.fromtimestamp(m["ts"], tz=timezone.utc)}

    def _rate_alert(self, key, ch, m) -> list[Alert]:
        ctx = self._ctx(key, m)
        what = "mean sentiment" if ch.signal == "sentiment" else f"{ch.signal} rate"
        summary = (f"{what} of {key[0]} {key[1]} {key[2]} ({key[3]}) moved {ch.before:.3f} → {ch.after:.3f} "
                   f"(ADWIN change point after {ch.turns} turns)")
        a = self.rules.make_alert(ch.kind, ctx, summary, {"before": ch.before, "after": ch.after, "turns": ch.turns},
                                  source_id=f"{'|'.join(key)}:{ch.signal}:{ch.turns}")
        if a is not None and not ch.worse:
            a.status = "resolved"
        return [a] if a is not None else []

    def _drift_alert(self, key, r, m) -> list[Alert]:
        if r.kind == "version_change" and not r.drifted:
            return []
        if not (r.new_alert or (r.kind == "version_change" and r.drifted)):
            return []
        ctx = self._ctx(key, m)
        vs = f"previous version {r.baseline_key.model_version}" if r.baseline_key else "its reference"
        summary = (f"embedding drift: {key[1]} {key[2]} ({key[0]}, {key[3]}) outputs moved away from {vs}: "
                   f"centroid distance {r.statistics.get('centroid', 0):.4f} > {r.thresholds.get('centroid', 0):.4f}, "
                   f"MMD² {r.statistics.get('mmd2', 0):.4f} > {r.thresholds.get('mmd2', 0):.4f}")
        a = self.rules.make_alert("embedding_drift", ctx, summary, r.to_dict(),
                                  source_id=f"{'|'.join(key)}:{r.kind}:{r.turn_end}")
        return [a] if a is not None else []


def restore_stored(state: ModelState, key: tuple, raw, metrics=None) -> bool:
    """Resume one key from its stored `model_state_snapshots.state`. A row that is not a valid snapshot of
    the key (legacy pickle, bad JSON, other version, wrong types or shapes) is skipped: the key starts
    fresh, the rejection is counted in convmon_snapshot_rejected_total{reason} and logged with the
    model-version key and the reason, never the row's contents."""
    key = tuple(key)
    try:
        state.restore(key, raw)
        return True
    except snapshots.SnapshotError as e:
        reason = e.reason
    except Exception as e:  # noqa: BLE001 - an unreadable snapshot must not stop the worker
        log.debug("snapshot restore failed: %s", type(e).__name__)
        reason = "invalid"
    if metrics is not None:
        metrics.snapshot_rejected.labels(reason).inc()
    log.warning("skipped the stored state of %s (%s): the key starts fresh", "|".join(key), reason)
    return False


def register(app: faust.App) -> None:
    rt = app.convmon_runtime
    cfg = rt.settings.worker
    # snapshot_every=1: process() returns a snapshot of every key the batch changed (built off the loop)
    windows = MinuteWindows(max_ahead_s=cfg.watermark_max_ahead_s, idle_flush_s=cfg.window_idle_flush_s)
    # the drift monitor's own LRU bound sits above ModelState's cap plus one batch of new keys: ModelState
    # evicts (after the snapshot is stored), the drift monitor never drops a key on its own
    drift = DriftMonitor(DriftConfig(max_keys=cfg.state_max_keys + cfg.batch_size))
    state = ModelState(drift, RateMonitor(), windows, rt.rules, snapshot_every=1, max_keys=cfg.state_max_keys,
                       idle_ttl_s=cfg.state_idle_ttl_s)
    executor = ThreadPoolExecutor(1, thread_name_prefix="convmon-state")
    app.convmon_model_state = state

    restored: set[tuple] = set()

    async def restore(key: tuple, raw) -> None:
        # parsed and checked on the state thread (like process()): a key's reference is rebuilt there, off the loop
        await asyncio.get_running_loop().run_in_executor(executor, restore_stored, state, key, raw, rt.metrics)

    async def restore_new_keys(records: list[dict]) -> None:
        """Resume the saved state of keys this worker has not seen yet (restart, rebalance)."""
        new = {tuple(m["k"]) for m in records} - restored
        for key in new:
            restored.add(key)
            rows = await rt.sink.read(
                "SELECT state FROM model_state_snapshots FINAL WHERE app = {a:String} AND model_name = {n:String} "
                "AND model_version = {v:String} AND role = {r:String}", dict(zip("anvr", key)))
            if rows:
                await restore(key, rows[0][0])

    async def save(due) -> None:
        if due:
            now = datetime.now(timezone.utc)
            await rt.sink.write([[*k, now, n, blob.decode()] for k, n, blob in due], table="model_state_snapshots")
            state.saved(due)

    async def load_references() -> None:
        rows = await rt.sink.read("SELECT reference FROM drift_baselines FINAL")
        for (raw,) in rows:
            try:
                state.drift.load_reference(Reference.from_dict(json.loads(raw)))
            except Exception as e:  # a bad stored reference must not stop the worker
                log.warning("skipping a stored drift reference: %s", type(e).__name__)
        if rows:
            log.info("loaded %d drift references from ClickHouse", len(rows))

    async def restore_all() -> None:
        """Resume every saved key before the first signal is applied (lazy restore is the fallback)."""
        rows = await rt.sink.read("SELECT app, model_name, model_version, role, state FROM model_state_snapshots FINAL")
        for *key, blob in rows:
            restored.add(tuple(key))
            await restore(tuple(key), blob)

    @app.agent(app.signals_topic, name="convmon.model_state", concurrency=1)
    async def model_state(stream):
        await rt.sink.open()
        await load_references()
        await restore_all()
        loop = asyncio.get_running_loop()
        rereader = Rereader(app, rt.metrics)
        async for events in stream.take_events(cfg.batch_size, within=cfg.batch_within_s):
            await rereader.check(events)
            records = [{**json.loads(ev.value), "_p": ev.message.partition, "_o": ev.message.offset} for ev in events]
            await restore_new_keys(records)
            t0 = time.perf_counter()
            out = await loop.run_in_executor(executor, state.process, records)
            rt.metrics.stage_seconds.labels("state_and_drift").inc(time.perf_counter() - t0)
            # Every key this batch changed is snapshotted before the batch's offsets are committed (take_events
            # acknowledges a batch when the agent asks for the next one): a worker killed without warning
            # resumes from a snapshot that holds every signal it committed, and re-reads the rest.
            await save(out["snapshots"])
            # bounded memory: keys beyond the cap or idle past the TTL wait in ClickHouse, and are
            # restored from there (restore_new_keys) when a signal of theirs comes again
            restored.difference_update(await loop.run_in_executor(executor, state.evict))
            rt.metrics.state_keys.set(len(state.touched))
            rt.metrics.state_turns.labels("applied").inc(out["applied"])
            rt.metrics.state_turns.labels("redelivered").inc(out["redelivered"])
            if out["pinned"]:
                await rt.sink.write([baseline_row(ref, "first_n") for ref in out["pinned"]], table="drift_baselines")
            if out["reports"]:
                await rt.sink.write([report_row(r, n) for r, n in out["reports"]], table="drift_reports")
            if out["windows"]:
                await rt.sink.write([w.row() for w in out["windows"]], table="window_stats")
            for a in out["alerts"]:
                await app.alerts_topic.send(key=a.dedup_key.encode(), value=alert_to_json(a))
            yield len(events)

    @app.timer(max(1.0, cfg.window_idle_flush_s / 4))
    async def flush_quiet_windows():
        rows = await asyncio.get_running_loop().run_in_executor(executor, state.flush_idle)
        if rows:
            await rt.sink.write([w.row() for w in rows], table="window_stats")

    @app.on_before_shutdown.connect
    async def _snapshot_on_shutdown(app, **kwargs):
        # on the state thread, so it waits for a batch being applied instead of reading it half-done
        due = await asyncio.get_running_loop().run_in_executor(executor, state.due_snapshots, True)
        await save(due)
        # the minute windows still open, written as they stand (replaced by their final rows when they close)
        rows = await asyncio.get_running_loop().run_in_executor(executor, state.windows.provisional)
        if rows:
            await rt.sink.write([w.row() for w in rows], table="window_stats")

    app.model_state = model_state
