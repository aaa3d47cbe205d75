"""Memory of the per-model-version state (security review finding 5): per key, and at 100k keys with and
without the cap. Writes bench/state-memory.json.

    .venv/bin/python bench/state_memory.py [--keys 100000] [--turns-per-key 20]

Each key gets `turns-per-key` signals with a random 384-d embedding (the worker's signal records), so its
drift reference builder, rate detectors, minute windows and dedup ids hold what a live key holds after
that many turns. Each run is a fresh process; memory is the growth of its resident set (RSS, after a
garbage collection and malloc_trim) from before the first key to after the last, so it includes
allocator overhead and is an upper bound of what the state holds. (tracemalloc counts the heap
exactly but slows this 40-fold: about 7 minutes per 10,000 keys.)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from convmon.state.model_state import ModelState
from convmon.wire import Signal
from convmon.alerting.rules import RuleSet
from convmon.state.drift import DriftConfig, DriftMonitor
from convmon.state.rates import RateMonitor
from convmon.state.windows import MinuteWindows

T0 = 1_800_000_000.0


def signals(key_i: int, turns: int, rng) -> list[Signal]:
    out = []
    for j in range(turns):
        e = rng.normal(size=384).astype(np.float32)
        e /= np.linalg.norm(e)
        out.append(Signal(key=("app", "model", f"v{key_i}", "assistant"), ts=T0 + j, event_id=f"{key_i}-{j}",
                          toxicity=0.1, sentiment=0.2, jailbreak=0.0, toxic=False, jailbreak_hit=False,
                          policy_hit=False, pii=False, embedding=e.astype(np.float16), partition=0,
                          offset=key_i * turns + j))
    return out


def rss_bytes() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(keys: int, turns: int, cap: int) -> dict:
    rng = np.random.default_rng(0)
    state = ModelState(DriftMonitor(DriftConfig(max_keys=cap + 1)), RateMonitor(),
                       MinuteWindows(clock=lambda: T0 + 1e6), RuleSet.load(), snapshot_every=1, max_keys=cap,
                       clock=lambda: T0 + 1e6)
    state.process(signals(-1, turns, rng))  # warm-up: lazily built shared tables (drift null models, imports)
    state.forget(("app", "model", "v-1", "assistant"))
    base = peak = rss_bytes()
    t0 = time.perf_counter()
    for i in range(keys):
        out = state.process(signals(i, turns, rng))
        state.saved(out["snapshots"])  # stands for the agent's write to ClickHouse
        state.evict()
        if (i + 1) % max(1, keys // 10) == 0:
            now = rss_bytes()
            peak = max(peak, now)
            print(f"  {i + 1}/{keys} keys, +{(now - base) / 2**20:.1f} MiB RSS", file=sys.stderr, flush=True)
    used = rss_bytes() - base
    return {"keys_fed": keys, "turns_per_key": turns, "cap": cap, "keys_in_memory": len(state.touched),
            "mib": round(used / 2**20, 1), "peak_mib": round((max(peak, used + base) - base) / 2**20, 1),
            "kib_per_key_in_memory": round(used / 1024 / max(1, len(state.touched)), 2),
            "seconds": round(time.perf_counter() - t0, 1)}


def run_fresh(keys: int, turns: int, cap: int) -> dict:
    """measure() in a new process, so that one run's heap does not hide in the next one's baseline."""
    r = subprocess.run([sys.executable, __file__, "--one", str(keys), str(turns), str(cap)], stdout=subprocess.PIPE,
                       text=True, check=True)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--uncapped-keys", type=int, default=100_000, help="keys for the run without a cap")
    ap.add_argument("--turns-per-key", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench/state-memory.json"))
    ap.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(*a.one)))
        return
    runs = []
    print(f"per key: 2,000 keys × {a.turns_per_key} turns, no cap", flush=True)
    runs.append(run_fresh(2000, a.turns_per_key, cap=10**9))
    print(f"{a.keys} keys × 1 turn, capped at 10,000 in memory (the default worker.state_max_keys)", flush=True)
    runs.append(run_fresh(a.keys, 1, cap=10_000))
    print(f"{a.uncapped_keys} keys × 1 turn, no cap (what main did before the cap)", flush=True)
    runs.append(run_fresh(a.uncapped_keys, 1, cap=10**9))
    report = {"command": f"python bench/state_memory.py --keys {a.keys} --uncapped-keys {a.uncapped_keys} "
                         f"--turns-per-key {a.turns_per_key}",
              "memory": "growth of the process RSS (after gc and malloc_trim), fresh process per run",
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "runs": runs}
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in runs:
        print(f"  {r['keys_fed']:>7} keys fed, cap {r['cap']:>10}: {r['keys_in_memory']:>7} in memory, "
              f"{r['mib']:>8} MiB ({r['kib_per_key_in_memory']} KiB a key, peak {r['peak_mib']} MiB) in {r['seconds']} s")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
