"""ClickHouse reads and rows of the per-model-version state: snapshots (`model_state_snapshots`), pinned
drift references (`drift_baselines`), drift reports and minute windows. What they hold is decided by the
state (convmon/state/model_state.py), which reads them back as untrusted input."""

from __future__ import annotations

from datetime import datetime, timezone

from .tables import SnapshotRow

def snapshot_rows(due: list[tuple[tuple, int, bytes]]) -> list[SnapshotRow]:
    """Rows for `ModelState.due_snapshots()`: (key, turns, snapshot JSON)."""
    now = datetime.now(timezone.utc)
    return [SnapshotRow(*k, now, n, blob.decode()) for k, n, blob in due]


async def load_snapshot(sink, key: tuple):
    """The stored snapshot of one key, or None."""
    rows = await sink.read(
        "SELECT state FROM model_state_snapshots FINAL WHERE app = {a:String} AND model_name = {n:String} "
        "AND model_version = {v:String} AND role = {r:String}", dict(zip("anvr", key)))
    return rows[0][0] if rows else None


async def load_snapshots(sink) -> list[tuple[tuple, str]]:
    """Every stored snapshot: (key, snapshot JSON)."""
    rows = await sink.read("SELECT app, model_name, model_version, role, state FROM model_state_snapshots FINAL")
    return [(tuple(key), blob) for *key, blob in rows]


async def load_references(sink) -> list[str]:
    """Pinned drift references, as stored (JSON)."""
    return [raw for (raw,) in await sink.read("SELECT reference FROM drift_baselines FINAL")]


def result_rows(out: dict) -> dict[str, list]:
    """What one `ModelState.process()` result stores, by table (snapshots are saved first, on their own)."""
    from .drift import baseline_row, report_row

    return {"drift_baselines": [baseline_row(ref, "first_n") for ref in out["pinned"]],
            "drift_reports": [report_row(r, n) for r, n in out["reports"]],
            "window_stats": list(out["windows"])}
