"""`convmon bench gil`: why the encoder runs in a child process.

The suite encoder scores the e2e bench's turns three ways, each the median of three passes:
alone; in a thread of a process whose other thread runs Python non-stop (as the Faust event
loop does under load); and in the child process (EncoderProcess) next to the same busy thread.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from datetime import datetime, timezone

from convmon_dev.e2e_bench import make_turns
from convmon.scoring.suite import SuiteModel


def _rate(model: SuiteModel, texts: list[str]) -> float:
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.encoder.run(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return round(statistics.median(rates), 1)


def _with_busy_thread(fn):
    stop = threading.Event()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    try:
        return fn()
    finally:
        stop.set()
        t.join()


def run_gil_bench(n: int = 1000, log=print) -> dict:
    texts = [t["text"] for t in make_turns(n)]
    here = SuiteModel(threads=1)
    here.encoder.run(texts[:32])
    log("encoder alone…")
    alone = _rate(here, texts)
    log("encoder in-process, next to a busy Python thread…")
    in_process = _with_busy_thread(lambda: _rate(here, texts))
    child = SuiteModel(threads=1, in_child_process=True)
    try:
        child.encoder.run(texts[:32])
        log("encoder in a child process, next to a busy Python thread…")
        in_child = _with_busy_thread(lambda: _rate(child, texts))
    finally:
        child.close()
    return {
        "command": f"convmon bench gil --turns {n}",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_cores": os.cpu_count(),
        "turns": n,
        "switch_interval_s": sys.getswitchinterval(),
        "turns_per_s": {"alone": alone, "in_process_busy_thread": in_process, "child_process_busy_thread": in_child},
    }
