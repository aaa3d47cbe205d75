"""Sampling profile of a running worker with py-spy, summarised: where the worker's CPU goes.

`convmon bench e2e --profile` records the worker during the throughput run (py-spy attaches to
the process; nothing in the worker changes) and writes the collapsed stacks plus this summary.
py-spy is in the `bench` extra (`pip install 'convmon[bench]'`).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Recorder:
    """py-spy record on a pid until stop(); output in collapsed-stack ("raw") format."""

    def __init__(self, pid: int, out: Path, rate: int = 50):
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed: pip install 'convmon[bench]' (or: pip install py-spy)")
        self.out = out
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                                      "--threads", "--subprocesses", "--nonblocking", "--output", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RuntimeError("py-spy did not stop")
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


def _frame_name(frame: str) -> str:
    """'finish (convmon/agents/turns.py:60)' → 'finish (convmon/agents/turns.py)'."""
    if " (" in frame and frame.endswith(")"):
        fn, loc = frame[:-1].split(" (", 1)
        return f"{fn} ({loc.rsplit(':', 1)[0]})"
    return frame


def summarize(raw: Path, top: int = 15) -> dict:
    """Shares of samples: per thread, self time by function, and time inside each convmon function."""
    threads: Counter = Counter()
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        # --subprocesses prefixes 'process PID:"cmdline"' frames (the scoring process is the second);
        # --threads then names the thread: "thread (16920): convmon-score_0"
        procs = [f for f in frames if f.startswith("process ")]
        frames = frames[len(procs):]
        where = "scoring process: " if len(procs) > 1 else ""
        if frames and frames[0].startswith("thread ("):
            head, frames = frames[0], frames[1:]
            threads[where + (head.split(": ", 1)[1] if ": " in head else head)] += n
        else:
            threads[where + "?"] += n
        if frames:
            self_time[_frame_name(frames[-1])] += n
        for name in {_frame_name(f) for f in frames if "convmon/" in f}:
            inclusive[name] += n

    def shares(c: Counter) -> list[list]:
        return [[name, round(n / total, 3)] for name, n in c.most_common(top)]

    return {"samples": total, "threads": shares(threads), "self": shares(self_time),
            "convmon_inclusive": shares(inclusive)}


def text(summary: dict) -> str:
    lines = [f"{summary['samples']} samples"]
    for title, key in (("by thread", "threads"), ("self time (leaf function)", "self"),
                       ("inside convmon functions (inclusive)", "convmon_inclusive")):
        lines.append(f"{title}:")
        lines += [f"  {share:6.1%}  {name}" for name, share in summary[key]]
    return "\n".join(lines)
