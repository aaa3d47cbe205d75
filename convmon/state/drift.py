"""Embedding drift per model version: a pinned reference per key, calibrated window tests, ADWIN.

A key is (app, model_name, model_version, role). For every key:

1. Reference. The first `ref_turns` turns (default 300) of the version are the baseline: up to
   `ref_size` embeddings kept by reservoir sampling, rounded to float16 (the stored form, so a
   reference read back from ClickHouse/Faust behaves exactly like the one that was built), their
   centroid, the RBF bandwidth (median heuristic on the reference's pairwise squared distances),
   mean/std of the score signals (toxicity, sentiment, jailbreak) when score dicts are given, and the
   null distributions of the two window statistics.

2. Window statistics, live window (last `window` turns, default 200) vs the reference:
   - centroid cosine distance: 1 - cos(mean(reference), mean(window));
   - MMD² (biased V-statistic = squared RKHS distance between the mean embeddings), RBF kernel.

3. Calibration FROM THE REFERENCE ITSELF, no hand-picked constants: a two-sample bootstrap under
   "no drift" draws a pseudo-reference (n_ref) and a pseudo-window (m) with replacement from the
   reference, `n_boot` times (default 2000), and computes both statistics; both sizes are those of the
   live test, so no rescaling is needed (the bootstrap mean of m draws has covariance Σ/m, exactly what
   the statistics depend on; for the cosine distance the bootstrap population is centred on the
   centroid shrunk to an unbiased |μ|², see `calibrate`). Per-look levels are far below 1/n_boot, so
   the null's upper tail is extrapolated with a peaks-over-threshold exponential fit (u = bootstrap
   90th percentile, scale β = mean excess over u): threshold(p) = u + β·ln(0.1/p). Both statistics
   are quadratic-form like (weighted chi-square nulls), whose tails are exponential.

4. Repeated looks: every evaluation of a key (scheduled or ADWIN confirmation) is look k = 1, 2, ...
   since the reference was pinned, tested at α_k = α / (k(k+1)) (Σ α_k = α: a Bonferroni-style alpha
   spending, so the family-wise false-alarm probability over the whole life of a reference, however
   long, is ≤ α per statistic). Thresholds grow like log k.

5. Decision (agreement): a look is `drifted` iff the centroid distance AND the MMD² are both beyond
   their thresholds at α_k. Looks are scheduled every `step` turns (default 50) once `window` live
   turns exist. River's ADWIN runs on the per-turn cosine distance to the reference centroid (primed
   with the reference's leave-one-out distances); a change point it flags is only a candidate: it
   triggers an immediate confirmation look on the last `confirm_turns` turns (default 50), with the
   same agreement rule and its own calibrated thresholds (size 50).

6. Version change: when a new version of (app, model_name, role) appears, the latest pinned reference
   of another version is its baseline; after the new version's first `window` turns a
   `version_change` report compares them (same statistics, single look at α) plus per-signal mean
   differences, to support a rollback decision.

Memory per key is bounded: ≤ ref_size embeddings + a deque of `window` turns + ADWIN's O(log n)
buckets; keys (and per-family baselines) are LRU-bounded by `max_keys`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import zlib
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import adwin as adwin_codec
from . import codec as C

SIGNALS = ("toxicity", "sentiment", "jailbreak")
STATS = ("centroid", "mmd2")
FORMAT_VERSION = 1
TAIL_FRAC = 0.1  # exponential tail fitted above the bootstrap's 90th percentile

Ts = Union[datetime, float, int, str, None]


class DriftKey(NamedTuple):
    app: str
    model_name: str
    model_version: str
    role: str

    @property
    def family(self) -> tuple[str, str, str]:
        """(app, model_name, role): the versions of one deployment."""
        return (self.app, self.model_name, self.role)

    def __str__(self) -> str:
        return f"{self.app}/{self.model_name}@{self.model_version}/{self.role}"


def as_key(key: Union[DriftKey, Sequence[str], Mapping[str, str]]) -> DriftKey:
    if isinstance(key, DriftKey):
        return key
    if isinstance(key, Mapping):
        return DriftKey(str(key["app"]), str(key["model_name"]), str(key["model_version"]), str(key["role"]))
    if len(key) != 4:
        raise ValueError(f"a drift key is (app, model_name, model_version, role), got {key!r}")
    return DriftKey(*(str(k) for k in key))


@dataclass
class DriftConfig:
    ref_turns: int = 300  # the first N turns of a version form its reference
    ref_size: int = 300  # embeddings kept from them (reservoir sample)
    window: int = 200  # live window size
    step: int = 50  # a scheduled look every `step` turns once `window` live turns exist
    confirm_turns: int = 50  # window of an ADWIN confirmation look
    alpha: float = 0.01  # family-wise level per statistic over a reference's life (alpha spending)
    n_boot: int = 2000  # bootstrap replicates per (statistic, window size)
    adwin_delta: float = 0.1  # candidates only: every ADWIN change point must be confirmed
    adwin_clock: int = 8
    max_keys: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.ref_size <= self.ref_turns):
            raise ValueError("need 0 < ref_size <= ref_turns")
        if not (2 <= self.confirm_turns <= self.window) or self.step < 1:
            raise ValueError("need 2 <= confirm_turns <= window and step >= 1")
        if not (0 < self.alpha < TAIL_FRAC):
            raise ValueError(f"alpha must be in (0, {TAIL_FRAC})")


def look_alpha(alpha: float, k: int) -> float:
    """Level of look k (1-based): alpha spending α/(k(k+1)), summing to α over infinitely many looks."""
    return alpha / (k * (k + 1))


# --------------------------------------------------------------------------- statistics


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def centroid_distance(a_mean: np.ndarray, b_mean: np.ndarray) -> float:
    return float(1.0 - _unit(a_mean) @ _unit(b_mean))


def _sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def _rbf(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    return np.exp(-gamma * _sqdist(x, y))


def _welford(values: Iterable[float]) -> dict[str, float]:
    n, mean, m2 = 0, 0.0, 0.0
    for v in values:
        n += 1
        d = v - mean
        mean += d / n
        m2 += d * (v - mean)
    return {"n": n, "mean": mean, "std": math.sqrt(m2 / (n - 1)) if n > 1 else 0.0}


Scores = Sequence[Optional[Mapping[str, Any]]]


def signal_diffs(ref_stats: Mapping[str, Mapping[str, float]], window_scores: Scores) -> dict[str, dict[str, float]]:
    """Per signal: reference mean, window mean, difference (window − reference) and a Welch z."""
    out: dict[str, dict[str, float]] = {}
    for name in SIGNALS:
        r = ref_stats.get(name)
        vals = [float(s[name]) for s in window_scores if s is not None and s.get(name) is not None]
        if not r or not r.get("n") or not vals:
            continue
        w = _welford(vals)
        diff = w["mean"] - r["mean"]
        se = math.sqrt(r["std"] ** 2 / r["n"] + w["std"] ** 2 / w["n"])
        out[name] = {
            "ref_mean": round(r["mean"], 5), "window_mean": round(w["mean"], 5), "diff": round(diff, 5),
            "z": round(diff / se, 3) if se > 0 else 0.0, "n_ref": int(r["n"]), "n_window": int(w["n"]),
        }  # fmt: skip
    return out


# --------------------------------------------------------------------------- calibration


@dataclass
class NullModel:
    """Bootstrap null of one statistic for one window size, with an exponential upper tail."""

    stat: str
    m: int  # window size
    n_ref: int
    n_boot: int
    q50: float
    q75: float
    u: float  # 90th percentile: start of the fitted tail
    beta: float  # exponential tail scale (mean excess over u)
    q99_empirical: float
    max_boot: float

    def threshold(self, p: float) -> float:
        """Value exceeded with probability p under no drift."""
        if p >= 0.5:
            return self.q50
        if p >= 0.25:
            return self.q75
        if p >= TAIL_FRAC:
            return self.u
        return self.u + self.beta * math.log(TAIL_FRAC / p)

    def p_value(self, x: float) -> float:
        if x > self.u:
            return TAIL_FRAC * math.exp(-(x - self.u) / self.beta) if self.beta > 0 else 0.0
        # coarse below the tail: linear in the stored quantiles (only the tail matters for decisions)
        pts = [(self.q50, 0.5), (self.q75, 0.25), (self.u, TAIL_FRAC)]
        if x <= self.q50:
            return 1.0 if x <= 0 else 0.5 + 0.5 * (1 - x / self.q50) if self.q50 > 0 else 1.0
        for (x0, p0), (x1, p1) in zip(pts, pts[1:]):
            if x <= x1:
                return p0 + (p1 - p0) * (x - x0) / (x1 - x0) if x1 > x0 else p1
        return TAIL_FRAC

    @classmethod
    def fit(cls, stat: str, m: int, n_ref: int, samples: np.ndarray) -> "NullModel":
        s = np.sort(np.asarray(samples, dtype=np.float64))
        u = float(np.quantile(s, 1 - TAIL_FRAC))
        excess = s[s > u] - u
        beta = float(excess.mean()) if excess.size else 0.0
        return cls(stat, int(m), int(n_ref), int(s.size), float(np.quantile(s, 0.5)), float(np.quantile(s, 0.75)),
                   u, beta, float(np.quantile(s, 0.99)), float(s[-1]))  # fmt: skip


# --------------------------------------------------------------------------- reference


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


class Reference:
    """A pinned baseline for one key: embeddings, centroid, kernel bandwidth, calibrated nulls."""

    def __init__(self, key: DriftKey, embeddings: np.ndarray, n_seen: int, score_stats: Optional[dict] = None,
                 created_ts: Ts = None, n_boot: int = 2000, seed: int = 0, bandwidth_sq: Optional[float] = None,
                 nulls: Optional[dict[tuple[str, int], NullModel]] = None):  # fmt: skip
        self.key = as_key(key)
        # the stored form (float16) IS the reference: a deserialised copy behaves identically
        e16 = np.asarray(embeddings, dtype=np.float16)
        if e16.ndim != 2 or e16.shape[0] < 10:
            raise ValueError(f"a reference needs a [n>=10, d] embedding matrix, got {e16.shape}")
        self.embeddings16 = e16
        self.embeddings = e16.astype(np.float32)
        self.n_seen = int(n_seen)
        self.score_stats = dict(score_stats or {})
        self.created_ts = created_ts
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        e64 = self.embeddings.astype(np.float64)
        self.centroid = e64.mean(0)
        sq = _sqdist(e64, e64)
        if bandwidth_sq is None:
            off = sq[np.triu_indices(len(e64), 1)]
            bandwidth_sq = float(np.median(off))
        self.bandwidth_sq = float(bandwidth_sq) if bandwidth_sq > 0 else 1.0
        self.gamma = 1.0 / self.bandwidth_sq
        self._K = np.exp(-self.gamma * sq)  # reference Gram matrix (n_ref²; 300² floats = 0.7 MB)
        self._k_rr = float(self._K.mean())
        self._nulls: dict[tuple[str, int], NullModel] = dict(nulls or {})

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(cls, key, embeddings: np.ndarray, n_seen: Optional[int] = None, scores: Optional[Scores] = None,
              created_ts: Ts = None, window_sizes: Sequence[int] = (), n_boot: int = 2000,
              seed: int = 0) -> "Reference":  # fmt: skip
        """Pin a reference and calibrate it for the given window sizes."""
        stats = {}
        if scores is not None:
            for name in SIGNALS:
                w = _welford(float(s[name]) for s in scores if s is not None and s.get(name) is not None)
                if w["n"]:
                    stats[name] = w
        ref = cls(key, embeddings, n_seen if n_seen is not None else len(embeddings), stats, created_ts, n_boot, seed)
        for m in window_sizes:
            ref.null("centroid", m)
        return ref

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def ref_id(self) -> str:
        return hashlib.sha1(self.embeddings16.tobytes()).hexdigest()[:12]

    # -- statistics ----------------------------------------------------------------------------

    def statistics(self, window: np.ndarray) -> dict[str, float]:
        w = np.asarray(window, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.dim or len(w) == 0:
            raise ValueError(f"window must be [m, {self.dim}], got {w.shape}")
        e = self.embeddings.astype(np.float64)
        k_ww = float(_rbf(w, w, self.gamma).mean())
        k_rw = float(_rbf(e, w, self.gamma).mean())
        c = _unit(self.centroid)
        return {
            "centroid": centroid_distance(self.centroid, w.mean(0)),
            "mmd2": max(self._k_rr + k_ww - 2.0 * k_rw, 0.0),
            "mean_distance": float((1.0 - w @ c).mean()),  # per-turn cosine distance to the centroid
        }

    def loo_distances(self) -> np.ndarray:
        """Leave-one-out cosine distance of each reference turn to the centroid of the others."""
        e = self.embeddings.astype(np.float64)
        others = self.centroid[None, :] * self.n - e
        others /= np.maximum(np.linalg.norm(others, axis=1, keepdims=True), 1e-12)
        return 1.0 - (e * others).sum(1)

    def distance(self, emb: np.ndarray) -> float:
        return float(1.0 - np.asarray(emb, dtype=np.float64) @ _unit(self.centroid))

    # -- calibration ---------------------------------------------------------------------------

    def _rng(self, m: int) -> np.random.Generator:
        h = zlib.crc32(f"{self.key}|{m}|{self.ref_id}".encode())
        return np.random.default_rng([self.seed, h])

    def calibrate(self, m: int) -> None:
        """Bootstrap both statistics for window size m (pseudo-reference n_ref, pseudo-window m, drawn
        with replacement from the reference) and fit their null models."""
        n, b = self.n, self.n_boot
        rng = self._rng(m)
        wr = np.zeros((b, n))
        ww = np.zeros((b, n))
        rows = np.arange(b)
        np.add.at(wr, (np.repeat(rows, n), rng.integers(0, n, b * n)), 1.0 / n)
        np.add.at(ww, (np.repeat(rows, m), rng.integers(0, n, b * m)), 1.0 / m)
        e = self.embeddings.astype(np.float64)
        # Bootstrap means are centred on the sample centroid, whose squared norm is inflated by noise
        # (E|mean|² = |μ|² + tr Σ/n); the cosine distance scales like 1/|centre|², so an uncorrected
        # null is too narrow (measured: P(p<0.05) = 0.08). Centre the bootstrap population on the
        # centroid shrunk to the unbiased |μ|² (mean of e_i·e_j over i≠j).
        mu = self.centroid
        mu2 = (n * n * float(mu @ mu) - float((e * e).sum())) / (n * (n - 1))
        shrink = math.sqrt(max(mu2, 1e-12) / max(float(mu @ mu), 1e-12))
        shift = (shrink - 1.0) * mu
        cr, cw = wr @ e + shift, ww @ e + shift
        cr /= np.maximum(np.linalg.norm(cr, axis=1, keepdims=True), 1e-12)
        cw /= np.maximum(np.linalg.norm(cw, axis=1, keepdims=True), 1e-12)
        cent = 1.0 - (cr * cw).sum(1)
        d = wr - ww
        mmd = np.maximum(((d @ self._K) * d).sum(1), 0.0)
        self._nulls[("centroid", m)] = NullModel.fit("centroid", m, n, cent)
        self._nulls[("mmd2", m)] = NullModel.fit("mmd2", m, n, mmd)

    def null(self, stat: str, m: int) -> NullModel:
        if (stat, m) not in self._nulls:
            self.calibrate(m)
        return self._nulls[(stat, m)]

    def thresholds(self, m: int, p: float) -> dict[str, float]:
        return {s: self.null(s, m).threshold(p) for s in STATS}

    def test(self, window: np.ndarray, p: float) -> tuple[dict[str, float], dict[str, float], dict[str, float], bool]:
        """Statistics, thresholds at level p, p-values, and the agreement decision."""
        m = len(window)
        st = self.statistics(window)
        thr = self.thresholds(m, p)
        pv = {s: self.null(s, m).p_value(st[s]) for s in STATS}
        drifted = all(st[s] > thr[s] for s in STATS)
        return st, thr, pv, drifted

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; embeddings as base64 float16 (300×384 → ~300 KB of text)."""
        ts = self.created_ts.isoformat() if isinstance(self.created_ts, datetime) else self.created_ts
        return {
            "format": FORMAT_VERSION,
            "key": self.key._asdict(),
            "ref_id": self.ref_id,
            "n_seen": self.n_seen,
            "created_ts": ts,
            "shape": list(self.embeddings16.shape),
            "embeddings_f16_b64": _b64(self.embeddings16.astype("<f2")),
            "bandwidth_sq": self.bandwidth_sq,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "score_stats": self.score_stats,
            "nulls": [asdict(v) for v in self._nulls.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "reference") -> "Reference":
        """The reference of `to_dict`, read as untrusted input (it comes back from ClickHouse): every field
        is checked for type, range and shape first; a bad one raises SnapshotError (a ValueError)."""
        d = C.obj(d, where, ("format", "key", "shape", "embeddings_f16_b64", "n_seen"))
        if d["format"] != FORMAT_VERSION or isinstance(d["format"], bool):
            raise C.SnapshotError("version", f"{where}.format")
        k = d["key"]
        if isinstance(k, dict):
            k = [C.obj(k, f"{where}.key", DriftKey._fields)[f] for f in DriftKey._fields]
        if len(C.lst(k, f"{where}.key", 4)) != 4:
            raise C.invalid(f"{where}.key: expected 4 parts")
        key = DriftKey(*(C.string(p, f"{where}.key") for p in k))
        shape = C.lst(d["shape"], f"{where}.shape", 2)
        emb = C.decode_array({"dtype": "<f2", "shape": shape, "b64": d["embeddings_f16_b64"]}, where, ndim=2)
        if emb.shape[0] < 10 or emb.shape[1] < 1:
            raise C.invalid(f"{where}.shape: a reference needs [n>=10, d>=1] embeddings")
        stats = {}
        for name, v in C.obj(d.get("score_stats") or {}, f"{where}.score_stats").items():
            if name not in SIGNALS:
                raise C.invalid(f"{where}.score_stats: unknown signal")
            v = C.obj(v, f"{where}.score_stats.{name}", ("n", "mean", "std"))
            stats[name] = {"n": C.integer(v["n"], f"{where}.score_stats.n", 0),
                           "mean": C.number(v["mean"], f"{where}.score_stats.mean"),
                           "std": C.number(v["std"], f"{where}.score_stats.std")}
        nulls = {}
        for i, n in enumerate(C.lst(d.get("nulls", []), f"{where}.nulls", 10_000)):
            w = f"{where}.nulls[{i}]"
            n = C.obj(n, w, tuple(f.name for f in fields(NullModel)))
            if n["stat"] not in STATS:
                raise C.invalid(f"{w}.stat: unknown statistic")
            nm = NullModel(n["stat"], C.integer(n["m"], f"{w}.m", 1), C.integer(n["n_ref"], f"{w}.n_ref", 1),
                           C.integer(n["n_boot"], f"{w}.n_boot", 1),
                           *(float(C.number(n[f], f"{w}.{f}")) for f in ("q50", "q75", "u", "beta", "q99_empirical",
                                                                          "max_boot")))  # fmt: skip
            nulls[(nm.stat, nm.m)] = nm
        ts = d.get("created_ts")
        if isinstance(ts, str):
            try:
                ts = datetime.fromisoformat(ts)
            except ValueError:
                pass
        elif ts is not None:
            ts = C.number(ts, f"{where}.created_ts")
        bw = d.get("bandwidth_sq")
        return cls(key, emb.astype(np.float16), C.integer(d["n_seen"], f"{where}.n_seen", 0), stats, ts,
                   C.integer(d.get("n_boot", 2000), f"{where}.n_boot", 1, 10_000_000),
                   C.integer(d.get("seed", 0), f"{where}.seed", 0, 2**63),
                   None if bw is None else float(C.number(bw, f"{where}.bandwidth_sq")), nulls)  # fmt: skip


class ReferenceBuilder:
    """Reservoir sample (Algorithm R) of the first `ref_turns` turns of a key, plus score statistics."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.rng = rng
        self.items: list[np.ndarray] = []
        self.n_seen = 0
        self.scores: dict[str, list[float]] = {s: [] for s in SIGNALS}  # ≤ ref_turns floats each
        self.first_ts: Ts = None

    def add(self, emb: np.ndarray, scores: Optional[Mapping[str, Any]], ts: Ts) -> None:
        if self.n_seen == 0:
            self.first_ts = ts
        self.n_seen += 1
        if len(self.items) < self.size:
            self.items.append(np.asarray(emb, dtype=np.float32))
        else:
            j = int(self.rng.integers(0, self.n_seen))
            if j < self.size:
                self.items[j] = np.asarray(emb, dtype=np.float32)
        if scores:
            for s in SIGNALS:
                if scores.get(s) is not None:
                    self.scores[s].append(float(scores[s]))

    # -- snapshot (plain data) -------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        bg = self.rng.bit_generator
        st = bg.state
        if not isinstance(bg, np.random.PCG64):  # pragma: no cover - _state always makes a PCG64
            raise TypeError("only PCG64 reservoir generators are snapshotted")
        return {
            "size": self.size,
            "n_seen": self.n_seen,
            "items": C.encode_array(np.stack(self.items)) if self.items else None,
            "scores": {s: list(v) for s, v in self.scores.items()},
            "first_ts": C.encode_ts(self.first_ts),
            # the reservoir's random generator, so the sample continues exactly as without a restart
            "rng": {"state": hex(st["state"]["state"]), "inc": hex(st["state"]["inc"]),
                    "has_uint32": st["has_uint32"], "uinteger": st["uinteger"]},
        }

    @classmethod
    def from_snapshot(cls, x: Any, where: str = "builder") -> "ReferenceBuilder":
        d = C.obj(x, where, ("size", "n_seen", "items", "scores", "first_ts", "rng"))
        size = C.integer(d["size"], f"{where}.size", 10, 1_000_000)  # a pinned reference needs >= 10 rows
        r = C.obj(d["rng"], f"{where}.rng", ("state", "inc", "has_uint32", "uinteger"))
        try:
            state, inc = (int(C.string(r[k], f"{where}.rng.{k}", 40), 16) for k in ("state", "inc"))
        except ValueError:
            raise C.invalid(f"{where}.rng: bad generator state") from None
        if not (0 <= state < 2**128 and 0 <= inc < 2**128):
            raise C.invalid(f"{where}.rng: bad generator state")
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                                   "has_uint32": C.integer(r["has_uint32"], f"{where}.rng.has_uint32", 0, 1),
                                   "uinteger": C.integer(r["uinteger"], f"{where}.rng.uinteger", 0, 2**32 - 1)}
        b = cls(size, rng)
        b.n_seen = C.integer(d["n_seen"], f"{where}.n_seen", 0)
        if d["items"] is not None:
            items = C.decode_array(d["items"], f"{where}.items", ndim=2).astype(np.float32)
            b.items = list(items)
        if len(b.items) != min(size, b.n_seen):  # the reservoir holds min(size, n_seen) items
            raise C.invalid(f"{where}.items: does not match size/n_seen")
        scores = C.obj(d["scores"], f"{where}.scores")
        for s in SIGNALS:
            vals = C.lst(scores.get(s, []), f"{where}.scores.{s}", b.n_seen)
            b.scores[s] = [float(C.number(v, f"{where}.scores.{s}")) for v in vals]
        b.first_ts = C.decode_ts(d["first_ts"], f"{where}.first_ts")
        return b


# --------------------------------------------------------------------------- reports


@dataclass
class DriftReport:
    key: DriftKey
    kind: str  # "window" (scheduled), "confirm" (ADWIN change point), "version_change"
    n: int  # turns in the tested window
    turn_start: int  # 0-based index of the window's first turn in the key's stream
    turn_end: int  # index of its last turn (the look happens after this turn)
    window_start: Ts
    window_end: Ts
    statistics: dict[str, float]
    thresholds: dict[str, float]
    p_values: dict[str, float]
    look: int  # look number k since the reference was pinned (0 for version_change)
    alpha_look: float
    drifted: bool
    new_alert: bool = False  # first drifted look of an episode: raise `embedding_drift`
    in_episode: bool = False  # a drift episode is open after this look (until a clean look after it)
    adwin_change: bool = False
    signals: dict[str, dict[str, float]] = field(default_factory=dict)
    reference_id: str = ""
    baseline_key: Optional[DriftKey] = None  # version_change: the previous version's key

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key._asdict()
        d["baseline_key"] = self.baseline_key._asdict() if self.baseline_key else None
        for k in ("window_start", "window_end"):
            if isinstance(d[k], datetime):
                d[k] = d[k].isoformat()
        return d


# --------------------------------------------------------------------------- monitor


class _KeyState:
    __slots__ = ("key", "builder", "ref", "turns", "live", "buf", "looks", "adwin", "pending", "episode",
                 "episode_turn", "baseline", "version_checked")  # fmt: skip

    def __init__(self, key: DriftKey, builder: ReferenceBuilder, window: int):
        self.key = key
        self.builder: Optional[ReferenceBuilder] = builder
        self.ref: Optional[Reference] = None
        self.turns = 0  # turns seen for this key
        self.live = 0  # turns since the reference was pinned
        self.buf: deque = deque(maxlen=window)  # (turn index, embedding, ts, scores)
        self.looks = 0
        self.adwin = None
        self.pending = False  # ADWIN change point awaiting confirmation
        self.episode = False  # currently in a drifted episode
        self.episode_turn = -1  # last turn of the look that opened the episode
        self.baseline: Optional[Reference] = None  # previous version's reference
        self.version_checked = False

    # -- snapshot (plain data) -------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Everything of this key as JSON-ready data: counters, reference and baseline (embeddings,
        bandwidth, calibrated nulls), the reservoir builder, the live window and the ADWIN detector."""
        buf = list(self.buf)
        return {
            "turns": self.turns, "live": self.live, "looks": self.looks, "pending": self.pending,
            "episode": self.episode, "episode_turn": self.episode_turn, "version_checked": self.version_checked,
            "ref": self.ref.to_dict() if self.ref is not None else None,
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "builder": self.builder.to_snapshot() if self.builder is not None else None,
            "adwin": adwin_codec.to_snapshot(self.adwin) if self.adwin is not None else None,
            "buf": {
                "turn": [it[0] for it in buf],
                "ts": [C.encode_ts(it[2]) for it in buf],
                "scores": [None if it[3] is None else {k: C.plain_number(v) for k, v in it[3].items()} for it in buf],
                "emb": C.encode_array(np.stack([it[1] for it in buf])) if buf else None,
            },
        }  # fmt: skip

    @classmethod
    def from_snapshot(cls, x: Any, key: DriftKey, cfg: DriftConfig, where: str = "drift") -> "_KeyState":
        """The key state of `to_snapshot`, checked field by field; a ValueError (SnapshotError) if unusable."""
        d = C.obj(x, where, ("turns", "live", "looks", "pending", "episode", "episode_turn", "version_checked",
                             "ref", "baseline", "builder", "adwin", "buf"))  # fmt: skip
        ref = None if d["ref"] is None else Reference.from_dict(d["ref"], f"{where}.ref")
        baseline = None if d["baseline"] is None else Reference.from_dict(d["baseline"], f"{where}.baseline")
        builder = None if d["builder"] is None else ReferenceBuilder.from_snapshot(d["builder"], f"{where}.builder")
        if ref is not None and ref.key != key:
            raise C.SnapshotError("key_mismatch", f"{where}.ref.key")
        if (ref is None) == (builder is None):
            raise C.invalid(f"{where}: needs either a reference or a reference builder")
        st = cls(key, builder, cfg.window)
        st.ref, st.baseline = ref, baseline
        st.turns = C.integer(d["turns"], f"{where}.turns", 0)
        st.live = C.integer(d["live"], f"{where}.live", 0, st.turns)
        st.looks = C.integer(d["looks"], f"{where}.looks", 0)
        st.pending = C.boolean(d["pending"], f"{where}.pending")
        st.episode = C.boolean(d["episode"], f"{where}.episode")
        st.episode_turn = C.integer(d["episode_turn"], f"{where}.episode_turn", -1)
        st.version_checked = C.boolean(d["version_checked"], f"{where}.version_checked")
        b = C.obj(d["buf"], f"{where}.buf", ("turn", "ts", "scores", "emb"))
        turns = [C.integer(t, f"{where}.buf.turn", 0) for t in C.lst(b["turn"], f"{where}.buf.turn", 1_000_000)]
        ts = [C.decode_ts(t, f"{where}.buf.ts") for t in C.lst(b["ts"], f"{where}.buf.ts", len(turns))]
        scores = []
        for sc in C.lst(b["scores"], f"{where}.buf.scores", len(turns)):
            if sc is not None:
                sc = {k: C.number(v, f"{where}.buf.scores") for k, v in C.obj(sc, f"{where}.buf.scores").items()}
                if not set(sc) <= set(SIGNALS):
                    raise C.invalid(f"{where}.buf.scores: unknown signal")
            scores.append(sc)
        emb = None if b["emb"] is None else C.decode_array(b["emb"], f"{where}.buf.emb", ndim=2).astype(np.float32)
        if not (len(ts) == len(scores) == len(turns) == (0 if emb is None else len(emb))):
            raise C.invalid(f"{where}.buf: columns differ in length")
        dims = {r.dim for r in (ref, baseline) if r is not None}
        if emb is not None:
            dims.add(emb.shape[1])
        if builder is not None and builder.items:
            dims.add(builder.items[0].shape[0])
        if len(dims) > 1:
            raise C.invalid(f"{where}: embeddings of different dimensions")
        st.buf.extend(zip(turns, list(emb) if emb is not None else [], ts, scores))
        if ref is not None:
            if d["adwin"] is None:
                raise C.invalid(f"{where}.adwin: missing")
            st.adwin, exact = adwin_codec.from_snapshot(d["adwin"], f"{where}.adwin")
            if not exact:
                # no window to rebuild (another river layout): a fresh detector, primed with the reference's
                # no-drift level exactly as when the reference was pinned; it re-learns the live level
                for dist in ref.loo_distances():
                    st.adwin.update(float(dist))
        elif d["adwin"] is not None:
            raise C.invalid(f"{where}.adwin: without a reference")
        return st


def _new_adwin(cfg: DriftConfig):
    try:
        from river import drift
    except ImportError as e:  # pragma: no cover - river is a deployment dependency of the drift stage
        raise RuntimeError("convmon.state.drift needs `river` (pip install river)") from e
    return drift.ADWIN(delta=cfg.adwin_delta, clock=cfg.adwin_clock)


class DriftMonitor:
    """Keyed embedding-drift state. Feed every turn with `update`; it returns a report per look."""

    def __init__(self, config: Optional[DriftConfig] = None, on_pin: Optional[Callable[[Reference], None]] = None):
        self.cfg = config or DriftConfig()
        self.on_pin = on_pin  # e.g. persist to ClickHouse `drift_baselines` / a Faust table
        self._states: "OrderedDict[DriftKey, _KeyState]" = OrderedDict()
        self._latest: "OrderedDict[tuple[str, str, str], Reference]" = OrderedDict()  # family → latest pinned ref

    # -- state access --------------------------------------------------------------------------

    def reference(self, key) -> Optional[Reference]:
        st = self._states.get(as_key(key))
        return st.ref if st else None

    def keys(self) -> list[DriftKey]:
        return list(self._states)

    def _state(self, key: DriftKey) -> _KeyState:
        st = self._states.get(key)
        if st is None:
            rng = np.random.default_rng([self.cfg.seed, zlib.crc32(str(key).encode())])
            st = _KeyState(key, ReferenceBuilder(self.cfg.ref_size, rng), self.cfg.window)
            prev = self._latest.get(key.family)
            if prev is not None and prev.key != key:
                st.baseline = prev
            self._states[key] = st
            while len(self._states) > self.cfg.max_keys:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(key)
        return st

    def forget(self, key) -> None:
        """Drop a key's live state from memory (its snapshot is kept in ClickHouse; the latest pinned
        reference of its family stays, so a new version of the model still compares against it)."""
        self._states.pop(as_key(key), None)

    # -- snapshots: one key's whole state as plain data ------------------------------------------

    def to_snapshot(self, key) -> Optional[dict[str, Any]]:
        st = self._states.get(as_key(key))
        return st.to_snapshot() if st is not None else None

    def from_snapshot(self, key, data: Any) -> _KeyState:
        """Parse and check a key's snapshot (nothing changes here; `restore` installs it)."""
        return _KeyState.from_snapshot(data, as_key(key), self.cfg)

    def restore(self, st: _KeyState) -> None:
        """Install a key state parsed by `from_snapshot` (replacing the key's current state)."""
        self._states[st.key] = st
        self._states.move_to_end(st.key)
        while len(self._states) > self.cfg.max_keys:
            self._states.popitem(last=False)
        if st.ref is not None:
            self._latest[st.key.family] = st.ref
            self._latest.move_to_end(st.key.family)
            while len(self._latest) > self.cfg.max_keys:
                self._latest.popitem(last=False)

    def load_reference(self, ref: Reference) -> None:
        """Restore a pinned reference (e.g. read back from `drift_baselines` after a restart)."""
        st = self._state(ref.key)
        self._pin(st, ref, notify=False)
        st.turns = max(st.turns, ref.n_seen)  # turn numbering continues after the reference period

    def _pin(self, st: _KeyState, ref: Reference, notify: bool = True) -> None:
        for m in {self.cfg.window, self.cfg.confirm_turns}:
            ref.null("centroid", m)
        st.ref, st.builder = ref, None
        st.live, st.looks, st.pending, st.episode, st.episode_turn = 0, 0, False, False, -1
        st.buf.clear()
        st.adwin = _new_adwin(self.cfg)
        for d in ref.loo_distances():  # prime ADWIN with the no-drift level
            st.adwin.update(float(d))
        self._latest[ref.key.family] = ref
        self._latest.move_to_end(ref.key.family)
        while len(self._latest) > self.cfg.max_keys:
            self._latest.popitem(last=False)
        if notify and self.on_pin:
            self.on_pin(ref)

    # -- the stream ----------------------------------------------------------------------------

    def update(self, key, embedding: np.ndarray, ts: Ts = None,
               scores: Optional[Mapping[str, Any]] = None) -> Optional[DriftReport]:  # fmt: skip
        key = as_key(key)
        st = self._state(key)
        emb = np.asarray(embedding, dtype=np.float32).reshape(-1)
        turn = st.turns
        st.turns += 1
        sc = {s: scores[s] for s in SIGNALS if scores.get(s) is not None} if scores else None
        report: Optional[DriftReport] = None

        if st.ref is None:
            assert st.builder is not None
            st.buf.append((turn, emb, ts, sc))
            st.builder.add(emb, sc, ts)
            if not st.version_checked and len(st.buf) == min(self.cfg.window, self.cfg.ref_turns):
                st.version_checked = True
                prev = st.baseline or self._latest.get(key.family)
                if prev is not None and prev.key != key:
                    st.baseline = prev
                    report = self._version_change(st)
            if st.builder.n_seen >= self.cfg.ref_turns:
                b = st.builder
                stats = {s: _welford(v) for s, v in b.scores.items() if v}
                ref = Reference(key, np.stack(b.items), b.n_seen, stats, b.first_ts, self.cfg.n_boot, self.cfg.seed)
                self._pin(st, ref)
            return report

        ref = st.ref
        st.buf.append((turn, emb, ts, sc))
        st.live += 1
        st.adwin.update(ref.distance(emb))
        if st.adwin.drift_detected:
            st.pending = True
        due_window = st.live >= self.cfg.window and (st.live - self.cfg.window) % self.cfg.step == 0
        due_confirm = st.pending and len(st.buf) >= self.cfg.confirm_turns
        if due_confirm:
            st.pending = False
            report = self._look(st, "confirm", self.cfg.confirm_turns)
        if due_window and (report is None or not report.drifted):
            report = self._look(st, "window", self.cfg.window)
        return report

    def _look(self, st: _KeyState, kind: str, m: int) -> DriftReport:
        assert st.ref is not None
        items = list(st.buf)[-m:]
        st.looks += 1
        p = look_alpha(self.cfg.alpha, st.looks)
        stats, thr, pv, drifted = st.ref.test(np.stack([it[1] for it in items]), p)
        new_alert = drifted and not st.episode
        if new_alert:
            st.episode, st.episode_turn = True, items[-1][0]
        elif not drifted and st.episode and items[0][0] > st.episode_turn:
            # resolved only by a clean look whose whole window came after the alert (no flapping
            # while the window still holds pre-change turns)
            st.episode = False
        return DriftReport(
            key=st.key, kind=kind, n=len(items), turn_start=items[0][0], turn_end=items[-1][0],
            window_start=items[0][2], window_end=items[-1][2], statistics=_round(stats), thresholds=_round(thr),
            p_values=_round(pv), look=st.looks, alpha_look=p, drifted=drifted, new_alert=new_alert,
            in_episode=st.episode,
            adwin_change=(kind == "confirm"), signals=signal_diffs(st.ref.score_stats, [it[3] for it in items]),
            reference_id=st.ref.ref_id,
        )  # fmt: skip

    def _version_change(self, st: _KeyState) -> DriftReport:
        items = list(st.buf)
        assert st.baseline is not None
        return self.version_change_report(
            st.baseline, np.stack([it[1] for it in items]), [it[3] for it in items], key=st.key,
            turns=(items[0][0], items[-1][0]), ts=(items[0][2], items[-1][2]),
        )  # fmt: skip

    def version_change_report(self, old_ref: Reference, new_window: np.ndarray, new_scores: Optional[Scores] = None,
                              key=None, turns: tuple[int, int] = (0, -1),
                              ts: tuple[Ts, Ts] = (None, None)) -> DriftReport:  # fmt: skip
        """Compare a new version's outputs with the previous version's reference (one look at α).

        `drifted` = centroid distance AND MMD² beyond the old reference's calibrated thresholds for a
        window of this size; `signals` = per-signal mean differences (new − old) with Welch z, when
        score dicts are given (toxicity, sentiment, jailbreak). Input for a rollback decision.
        """
        w = np.asarray(new_window, dtype=np.float32)
        stats, thr, pv, drifted = old_ref.test(w, self.cfg.alpha)
        sig = signal_diffs(old_ref.score_stats, list(new_scores)) if new_scores is not None else {}
        return DriftReport(
            key=as_key(key) if key is not None else old_ref.key, kind="version_change", n=len(w),
            turn_start=turns[0], turn_end=turns[1] if turns[1] >= 0 else len(w) - 1,
            window_start=ts[0], window_end=ts[1],
            statistics=_round(stats), thresholds=_round(thr), p_values=_round(pv), look=0, alpha_look=self.cfg.alpha,
            drifted=drifted, new_alert=drifted, in_episode=drifted, signals=sig, reference_id=old_ref.ref_id,
            baseline_key=old_ref.key,
        )  # fmt: skip


def _round(d: Mapping[str, float], nd: int = 6) -> dict[str, float]:
    return {k: float(f"{v:.{nd}g}") for k, v in d.items()}
