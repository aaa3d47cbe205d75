"""Rows of the drift tables: `drift_reports` (per evaluated window / version change) and `drift_baselines`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from .tables import BaselineRow, DriftReportRow

_NS = uuid.UUID("5b0f6f0e-3c1b-4b8e-8e3e-6d6f64656c73")


def report_row(r, n_reference: int) -> DriftReportRow:
    k = r.key
    ref_version = r.baseline_key.model_version if r.baseline_key else k.model_version
    rid = uuid.uuid5(_NS, f"{'|'.join(k)}:{r.kind}:{r.turn_end}:{r.reference_id}")
    ts = r.window_end if isinstance(r.window_end, datetime) else datetime.now(timezone.utc)
    return DriftReportRow(rid, ts, "version_change" if r.kind == "version_change" else "window", k.app, k.model_name,
                          k.model_version, k.role, ref_version, r.n, n_reference,
                          r.statistics.get("centroid", 0.0), r.thresholds.get("centroid", 0.0),
                          r.statistics.get("mmd2", 0.0), r.thresholds.get("mmd2", 0.0), int(r.drifted),
                          json.dumps(r.to_dict(), default=str))


def baseline_row(ref, source: str) -> BaselineRow:
    return BaselineRow(*ref.key, datetime.now(timezone.utc), ref.n_seen, json.dumps(ref.to_dict()), source)
