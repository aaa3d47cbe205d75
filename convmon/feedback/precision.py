"""Precision where convmon runs: per signal, app and model version, from the labels (view feedback_labels).

A label counts once per item (the alert, else the turn) and signal: the latest replaces earlier ones, so a
label corrected later is counted as corrected. precision = confirmed / (confirmed + false_alarm), with a
Wilson score interval (95 %); `missed` labels are counted beside it (they are turns convmon did not flag).
The same SQL feeds `convmon precision`, the Grafana panel and `convmon report` (dashboards.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _wilson_sql(k: str, n: str, sign: str) -> str:
    z = f"{Z95!r}"
    return (f"if({n} = 0, NULL, round(greatest(0, least(1, (({k} / {n}) + {z} * {z} / (2 * {n})) / (1 + {z} * {z} / {n}) "
            f"{sign} {z} * sqrt(({k} / {n}) * (1 - {k} / {n}) / {n} + {z} * {z} / (4 * {n} * {n})) / (1 + {z} * {z} / {n}))), 4))")


def precision_sql(where: str = "1") -> str:
    """Per (signal, app, model_version): labelled, confirmed, false_alarm, missed, precision, its Wilson 95 %
    bounds. `where` filters the labelled items (columns labelled_at: the latest label's time, app, model_version,
    signal)."""
    return (
        "SELECT signal, app, model_version, count() AS labelled, countIf(verdict = 'confirmed') AS confirmed, "
        "countIf(verdict = 'false_alarm') AS false_alarm, countIf(verdict = 'missed') AS missed, "
        "if(confirmed + false_alarm = 0, NULL, round(confirmed / (confirmed + false_alarm), 4)) AS precision, "
        f"{_wilson_sql('confirmed', '(confirmed + false_alarm)', '-')} AS precision_low, "
        f"{_wilson_sql('confirmed', '(confirmed + false_alarm)', '+')} AS precision_high "
        "FROM (SELECT item, signal, argMax(verdict, ts) AS verdict, argMax(app, ts) AS app, "
        "argMax(model_version, ts) AS model_version, max(ts) AS labelled_at FROM feedback_labels GROUP BY item, signal) "
        f"WHERE {where} GROUP BY signal, app, model_version ORDER BY signal, app, model_version"
    )


@dataclass(frozen=True)
class PrecisionRow:
    signal: str
    app: str
    model_version: str
    labelled: int
    confirmed: int
    false_alarm: int
    missed: int
    precision: float | None
    low: float | None
    high: float | None


def precision(client, app: str = "", since_s: float = 7 * 86400) -> list[PrecisionRow]:
    """The rows of precision_sql for labels given in the last `since_s` seconds (one app, or all)."""
    where = "labelled_at >= now64(3) - toIntervalSecond({since:UInt64}) AND ({app:String} = '' OR app = {app:String})"
    rows = client.query(precision_sql(where), parameters={"since": int(since_s), "app": app}).result_rows
    return [PrecisionRow(*r) for r in rows]


def format_rows(rows: list[PrecisionRow]) -> list[str]:
    out = [f"{'signal':<26} {'app':<16} {'model version':<16} {'labelled':>8} {'precision':>9}  {'95% (Wilson)':<15} "
           f"{'missed':>6}"]
    for r in rows:
        p = "-" if r.precision is None else f"{r.precision:.3f}"
        ci = "-" if r.low is None else f"{r.low:.3f}–{r.high:.3f}"
        out.append(f"{r.signal:<26} {r.app:<16} {r.model_version:<16} {r.labelled:>8} {p:>9}  {ci:<15} {r.missed:>6}")
    return out
