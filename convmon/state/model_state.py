"""Per-model-version state: embedding drift, signal-rate drift (ADWIN), 1-minute aggregates.

Plain code, fed batches of `wire.Signal` (one per scored turn, keyed by app|model|version|role) on one
thread. `process()` returns rows to store and alerts to raise. Each key's whole state is a versioned
JSON snapshot (state/snapshot.py), stored before the batch's offsets commit, so a worker killed without
warning resumes with every committed signal counted once; snapshots are read back as untrusted input.
Memory holds at most `max_keys` model versions (LRU) and none idle past `idle_ttl_s`; the rest wait in
their snapshots. The Faust wiring is agents/model_state.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone

import numpy as np

from ..alerting.model import Alert
from ..store import model_state as stored
from ..batch import DeadLetter, RawRecord
from ..wire import InvalidRecord, Signal, decode_signals
from . import snapshot as snapshots
from .drift import DriftConfig, DriftMonitor, Reference
from .rates import RateMonitor
from .windows import MinuteWindows

log = logging.getLogger(__name__)
RECENT_IDS = 4096  # per key: covers any batch that can be re-delivered before its offsets are committed


class ModelState:
    """Plain state holder; `process(signals)` returns rows to store and alerts to raise."""

    @classmethod
    def from_settings(cls, worker, rules) -> "ModelState":
        """As the worker runs it (`worker`: WorkerSettings). snapshot_every=1: process() returns a snapshot of every
        key the batch changed. The drift monitor's own LRU bound sits above the cap plus one batch of new keys:
        ModelState evicts (after the snapshot is stored), the drift monitor never drops a key on its own."""
        windows = MinuteWindows(max_ahead_s=worker.watermark_max_ahead_s, idle_flush_s=worker.window_idle_flush_s)
        drift = DriftMonitor(DriftConfig(max_keys=worker.state_max_keys + worker.batch_size))
        return cls(drift, RateMonitor(), windows, rules, snapshot_every=1, max_keys=worker.state_max_keys,
                   idle_ttl_s=worker.state_idle_ttl_s)

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

    def process(self, signals: list[Signal]) -> dict:
        """Apply a batch of signals (each with the partition and offset it was read from)."""
        reports, alerts = [], []
        applied = 0
        # A record carries a key's signals of one scored batch and is applied whole in one call: the rest of
        # the record being applied goes on; a record at or before the last one applied is already in this state.
        opened: set[tuple] = set()
        for m in signals:
            key = m.key
            if m.offset is not None:
                done = self.applied.get(key)
                record = (key, m.partition, m.offset)
                if (done is not None and done[0] == m.partition and m.offset <= done[1]
                        and record not in opened):
                    continue  # already in this state (re-delivered after a restart)
                opened.add(record)
                self.applied[key] = (m.partition, m.offset)
            recent = self.recent.setdefault(key, OrderedDict())
            if m.event_id in recent:
                continue  # the same turn, scored and published again (at-least-once upstream)
            recent[m.event_id] = None
            if len(recent) > RECENT_IDS:
                recent.popitem(last=False)
            applied += 1
            self.unsaved[key] = self.unsaved.get(key, 0) + 1
            self.touched[key] = self.clock()
            self.touched.move_to_end(key)
            self.windows.add(key, m.ts, m.toxicity, m.sentiment, bool(m.jailbreak_hit), m.policy_hit, m.pii,
                             m.unsupported_language)
            # rates count the turns a decision was made on (None: not decided, e.g. jailbreak on assistant turns)
            for ch in self.rates.update(key, {
                "toxicity": None if m.toxic is None else float(m.toxic),
                "jailbreak": None if m.jailbreak_hit is None else float(m.jailbreak_hit),
                "policy": float(m.policy_hit) if m.toxicity is not None and not m.unsupported_language else None,
                "sentiment": m.sentiment,
            }):
                alerts += self._rate_alert(key, ch, m)
            if m.embedding is not None:
                when = datetime.fromtimestamp(m.ts, tz=timezone.utc)
                scores = {"toxicity": m.toxicity, "sentiment": m.sentiment, "jailbreak": m.jailbreak}
                r = self.drift.update(key, m.embedding.astype(np.float32), when, scores)
                if r is not None:
                    ref = self.drift.reference(r.baseline_key or key)
                    reports.append((r, ref.embeddings.shape[0] if ref is not None else 0))
                    self.windows.note_drift(key, m.ts, r.statistics.get("centroid", 0.0))
                    alerts += self._drift_alert(key, r, m)
        pinned, self.pinned[:] = list(self.pinned), []
        touched = {m.key for m in signals}
        return {"reports": reports, "alerts": alerts, "windows": self.windows.close(keys=touched), "pinned": pinned,
                "snapshots": self.due_snapshots(), "applied": applied, "redelivered": len(signals) - applied}

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
                "ts": datetime.fromtimestamp(m.ts, tz=timezone.utc)}

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


def read_signals(records: "list[RawRecord]") -> tuple[list[Signal], list[DeadLetter]]:
    """convmon.signals records → their signals, in order, and the records that are not signal records
    (dead-lettered with reason invalid_signal_record: the state goes on without them)."""
    signals, dead = [], []
    for r in records:
        try:
            signals += decode_signals(r.value, r.partition, r.offset)
        except InvalidRecord as e:
            dead.append(DeadLetter(r, "invalid_signal_record", str(e)))
    return signals, dead


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


class SnapshotKeeper:
    """Keeps a ModelState and its ClickHouse snapshots in step: at start, the pinned references and every saved
    key; a key new to this worker (rebalance, eviction) is restored before its first signal is applied; due
    snapshots are saved, and stay due until stored. `on_state_thread(fn, *args)` runs on the state's thread."""

    def __init__(self, state, sink, on_state_thread, metrics=None):
        self.state, self.sink, self.on_state_thread, self.metrics = state, sink, on_state_thread, metrics
        self.restored: set[tuple] = set()

    async def _restore(self, key: tuple, raw) -> None:
        # parsed and checked on the state thread, like process(): a key's reference is rebuilt there, off the loop
        await self.on_state_thread(restore_stored, self.state, key, raw, self.metrics)

    async def start(self) -> None:
        for raw in await stored.load_references(self.sink):
            try:
                self.state.drift.load_reference(Reference.from_dict(json.loads(raw)))
            except Exception as e:  # noqa: BLE001 - a bad stored reference must not stop the worker
                log.warning("skipping a stored drift reference: %s", type(e).__name__)
        for key, blob in await stored.load_snapshots(self.sink):
            self.restored.add(key)
            await self._restore(key, blob)

    async def restore_new(self, keys) -> None:
        for key in set(keys) - self.restored:
            self.restored.add(key)
            raw = await stored.load_snapshot(self.sink, key)
            if raw is not None:
                await self._restore(key, raw)

    async def save(self, due) -> None:
        if due:
            await self.sink.write(stored.snapshot_rows(due))
            self.state.saved(due)

    def evicted(self, keys) -> None:
        """Keys dropped from memory: restored from their snapshots when a signal of theirs comes again."""
        self.restored.difference_update(keys)
