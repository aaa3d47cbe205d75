"""`convmon bench models`: throughput and latency of the scoring designs, side by side, one run.

- suite:              the shipped models/suite.onnx (int8 encoder + all heads, one session)
- encoder:            the bare int8 encoder + pooling (the ceiling: no heads)
- fp32:               the same suite design with the fp32 encoder
- per_check_baseline: one model per check, as the peer guardrail tools run it — a separate
                      session (own tokenisation and encoder pass) for every signal the suite yields:
                      toxicity, sentiment, jailbreak, each policy, and the drift embedding. Each is
                      the same int8 MiniLM, so the baseline is generous: the peers' per-scanner
                      models are 100M+ parameters.
Turns: short (≈15 tokens), long (≈60 tokens) and very long (≈1,000 tokens: scored in overlapping
windows and sentence by sentence) texts drawn from our labelled dev sets.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from convmon.scoring.suite import Encoder, make_tokenizer
from convmon_dev.modelsuite.build import int8_graph, merged_weights, write_graphs
from convmon_dev.modelsuite.evaluate import read_set


def _texts(models_dir: Path, tokenizer_path: Path) -> dict[str, list[str]]:
    tok = make_tokenizer(tokenizer_path)
    pool = []
    for task in ("toxicity", "sentiment", "jailbreak"):
        pool += [r["text"] for r in read_set(models_dir / "data" / task / "dev.jsonl")]
    lengths = [len(e.ids) for e in tok.encode_batch(pool)]
    short = [t for t, n in zip(pool, lengths) if 11 <= n <= 19]
    long = []
    buf, n_buf = [], 0
    for t, n in zip(pool, lengths):  # join dev sentences into 55–70-token assistant-like replies
        if n > 40:
            continue
        buf.append(t)
        n_buf += n - 2
        if n_buf >= 55:
            if n_buf <= 68:
                long.append(" ".join(buf))
            buf, n_buf = [], 0
    # ≈1,000-token messages: scored in windows of 128 word pieces and sentence by sentence: the cost of long turns
    xlong = [" ".join(long[i : i + 16]) for i in range(0, min(len(long), 256) - 16, 4)]
    return {"short": short[:256], "long": long[:256], "xlong": xlong[:48]}


def _measure(fn: Callable[[list[str]], object], texts: list[str], batch: int, seconds: float) -> dict:
    lat = []
    n = 0
    i = 0
    fn(texts[:batch])  # warm-up
    t_end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < t_end:
        chunk = [texts[(i + k) % len(texts)] for k in range(batch)]
        i += batch
        s = time.perf_counter()
        fn(chunk)
        lat.append((time.perf_counter() - s) / batch)
        n += batch
    elapsed = time.perf_counter() - t0
    lat_ms = sorted(x * 1000 for x in lat)
    return {
        "turns_per_s": round(n / elapsed, 1),
        "p50_ms_per_turn": round(statistics.median(lat_ms), 3),
        "p99_ms_per_turn": round(lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))], 3),
    }


# turns per scorer call; very long turns take ~0.1–0.7 s each, so fewer per call
BATCHES = {"short": (1, 32), "long": (1, 32), "xlong": (1, 4)}


def _previous_suite(commit: str, tmp: Path) -> Path:
    """suite.onnx of an earlier commit (git show), for a same-run speed comparison."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    blob = subprocess.run(["git", "-C", str(root), "show", f"{commit}:models/suite.onnx"], check=True,
                          capture_output=True).stdout
    (tmp / "previous.onnx").write_bytes(blob)
    return tmp / "previous.onnx"


def run_bench(models_dir: Path, seconds: float = 3.0, threads: int = 1, log=print, previous: str | None = None) -> dict:
    manifest = json.loads((models_dir / "manifest.json").read_text())
    suite_path = models_dir / manifest["suite"]["file"]
    tok_path = models_dir / manifest["suite"]["tokenizer"]
    with tempfile.TemporaryDirectory(prefix="convmon-bench-") as tmp_s:
        tmp = Path(tmp_s)
        log("building the comparison graphs (bare int8 encoder, fp32 suite, one model per check)…")
        write_graphs(models_dir, tmp)  # suite_fp32.onnx (and an int8 suite like the shipped one)
        _, _, heads = merged_weights(models_dir)
        # One session per check, as the peer tools run it (the drift embedding is one more).
        per_check = [Encoder(int8_graph(models_dir, tmp / f"check_{n}.onnx", {n: h},
                                        [n[len("policy_"):]] if n.startswith("policy_") else []), tok_path, threads)
                     for n, h in heads.items()]
        per_check.append(Encoder(int8_graph(models_dir, tmp / "encoder.onnx"), tok_path, threads))

        designs = {
            "suite": Encoder(suite_path, tok_path, threads).run,
            "encoder": Encoder(tmp / "encoder.onnx", tok_path, threads).run,
            "fp32": Encoder(tmp / "suite_fp32.onnx", tok_path, threads).run,
            "per_check_baseline": lambda texts: [e.run(texts) for e in per_check],
        }
        if previous:
            designs["previous_suite"] = Encoder(_previous_suite(previous, tmp), tok_path, threads).run
        texts = _texts(models_dir, tok_path)
        results: dict = {}
        for length, sample in texts.items():
            for batch in BATCHES[length]:
                for name, fn in designs.items():
                    r = _measure(fn, sample, batch, seconds)
                    results.setdefault(length, {}).setdefault(f"batch_{batch}", {})[name] = r
                    log(f"  {length:<5} batch {batch:<2} {name:<19} {r['turns_per_s']:>8.1f} turns/s  "
                        f"p50 {r['p50_ms_per_turn']:.2f} ms  p99 {r['p99_ms_per_turn']:.2f} ms")

    tok = make_tokenizer(tok_path)
    report: dict = {
        "command": f"convmon bench models --seconds {seconds} --threads {threads}"
                   + (f" --previous {previous}" if previous else ""),
        "machine": {"cpu_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "onnxruntime_threads": threads,
        "suite_version": manifest["suite"]["version"],
        "checks_in_baseline": [*heads, "drift_embedding"],
        "mean_tokens": {k: round(float(np.mean([len(e.ids) for e in tok.encode_batch(v)])), 1) for k, v in texts.items()},
        "n_texts": {k: len(v) for k, v in texts.items()},
        "results": results,
    }
    lines = []
    for length in texts:
        b32 = results[length][f"batch_{max(BATCHES[length])}"]
        report[length] = {
            "suite_turns_per_s": b32["suite"]["turns_per_s"],
            "encoder_turns_per_s": b32["encoder"]["turns_per_s"],
            "fp32_turns_per_s": b32["fp32"]["turns_per_s"],
            "per_check_baseline_turns_per_s": b32["per_check_baseline"]["turns_per_s"],
            "suite_vs_encoder": round(b32["encoder"]["turns_per_s"] / b32["suite"]["turns_per_s"], 3),
            "suite_vs_per_check": round(b32["suite"]["turns_per_s"] / b32["per_check_baseline"]["turns_per_s"], 2),
            "suite_batch1_p50_ms": results[length]["batch_1"]["suite"]["p50_ms_per_turn"],
            "suite_batch1_p99_ms": results[length]["batch_1"]["suite"]["p99_ms_per_turn"],
        }
        if previous:
            report[length]["previous_suite_turns_per_s"] = b32["previous_suite"]["turns_per_s"]
            report[length]["suite_vs_previous"] = round(b32["suite"]["turns_per_s"] / b32["previous_suite"]["turns_per_s"], 3)
        r = report[length]
        lines.append(
            f"{length:<5} (≈{report['mean_tokens'][length]} tokens, batch {max(BATCHES[length])}): suite {r['suite_turns_per_s']:.0f}/s, "
            f"bare encoder {r['encoder_turns_per_s']:.0f}/s (ratio {r['suite_vs_encoder']}), fp32 "
            f"{r['fp32_turns_per_s']:.0f}/s, one-model-per-check {r['per_check_baseline_turns_per_s']:.0f}/s "
            f"(suite {r['suite_vs_per_check']}x); batch 1 p50 {r['suite_batch1_p50_ms']} ms"
            + (f"; previous suite {r['previous_suite_turns_per_s']:.0f}/s (now {r['suite_vs_previous']}x)" if previous else "")
        )
    report["summary"] = "\n".join(lines)
    return report
