"""Where the e2e bench's fraction goes on a small machine: two measurements behind the README's paragraph.

    .venv/bin/python bench/encoder_share.py [--turns 2000]

1. The bare encoder's ceiling (the median of the e2e bench's own three passes) alone, beside one busy Python process
   (the other core taken, as the broker, the load generator and the worker's event loop take it in the e2e
   run), and alone again.
2. Per turn, the worker's own scoring work around the encoder call (language detection, decisions,
   validation, PII) against the encoder's: the share a child encoder waits for.
Prints only; numbers vary by ±5% between runs on a shared VM.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid

from convmon.contract import ChatTurn
from convmon.scoring.decisions import decide
from convmon.scoring.language import detect
from convmon.scoring.pii import PiiScorer
from convmon.scoring.suite import SuiteModel
from convmon_dev.e2e_bench import _encoder_passes, make_turns


def _encoder_ceiling(turns, threads):
    return round(statistics.median(_encoder_passes(turns, threads)), 1)


def ceilings(turns: list[dict]) -> None:
    print(f"bare encoder, alone:              {_encoder_ceiling(turns, 1)} turns/s", flush=True)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        print(f"bare encoder, beside a busy core: {_encoder_ceiling(turns, 1)} turns/s", flush=True)
    finally:
        busy.kill()
    print(f"bare encoder, alone again:        {_encoder_ceiling(turns, 1)} turns/s", flush=True)


def worker_share(turns: list[dict]) -> None:
    texts = [t["text"] for t in turns]
    model = SuiteModel()
    model.encoder.run(texts[:32])
    t = [time.perf_counter()]
    pieces = model.encoder.run_pieces(texts)
    t.append(time.perf_counter())
    for norm in pieces.texts:
        detect(norm, model.calibration.languages)
    t.append(time.perf_counter())
    for i in range(len(texts)):
        k = pieces.of(i)
        decide({name: v[k] for name, v in pieces.outputs.items()}, model.calibration, model.policy_ids, "user",
               judged=True)
    t.append(time.perf_counter())
    validated = [ChatTurn.model_validate({**x, "event_id": str(uuid.uuid4()), "ts": "2026-12-07T00:00:00Z"})
                 for x in turns]
    t.append(time.perf_counter())
    PiiScorer().score(validated)
    t.append(time.perf_counter())
    ms = [1000 * (b - a) / len(texts) for a, b in zip(t, t[1:])]
    print(f"per turn: encoder {ms[0]:.2f} ms; worker side {sum(ms[1:]):.3f} ms (language {ms[1]:.3f}, decisions "
          f"{ms[2]:.3f}, validation {ms[3]:.3f}, PII {ms[4]:.3f}) = {sum(ms[1:]) / ms[0]:.1%} of the encoder")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=2000)
    args = ap.parse_args()
    turns = make_turns(args.turns)
    ceilings(turns)
    worker_share(turns)


if __name__ == "__main__":
    main()
