"""`convmon bench e2e`: the whole pipeline on the real local broker into embedded ClickHouse.

Two runs of a real `convmon worker` (all scorers, dynamics, drift, aggregates, alerting to a
local webhook receiver):
1. **throughput**: N turns published as fast as possible → sustained turns/s (first produce to
   last row in ClickHouse), per-stage time, consumer lag over time, worker RSS, CPU per turn;
2. **latency**: the same kind of stream at half the sustained rate → produce→row latency
   p50/p95/p99 and produce→alert-delivered latency p50/p99, and where the alert's time goes: each hop of
   the alert path (convmon_alert_hop_seconds, alerting/hops.py) read from the worker's /metrics at the end.
Plus the ceiling: the bare int8 encoder's throughput on the same turns, in the same run (three passes
before the throughput run and three after it; the median of the six).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np

from convmon_dev.bench_profile import Recorder, summarize, text as profile_text
from convmon.alerting.hops import HOPS
from convmon.config import Settings
from convmon.contract import format_ts
from convmon_dev.modelsuite.evaluate import read_set
from convmon.produce import TurnPublisher
from convmon.scoring.suite import default_model_dir

TOXIC = ["You are a pathetic worthless idiot and everyone hates you, shut up.",
         "Shut up, you useless moron, nobody wants your stupid garbage answers."]


def make_turns(n: int, toxic_every: int = 10) -> list[dict]:
    """Conversations of 8 turns: short user prompts, longer assistant replies (from our dev sets)."""
    models = default_model_dir()
    pool = []
    for task in ("sentiment", "toxicity", "jailbreak"):
        pool += [r["text"] for r in read_set(models / "data" / task / "dev.jsonl") if len(r["text"]) < 200]
    rng = np.random.default_rng(7)
    turns = []
    for i in range(n):
        conv, idx = divmod(i, 8)
        role = "user" if idx % 2 == 0 else "assistant"
        if role == "user":
            text = TOXIC[conv % 2] if conv % toxic_every == 5 and idx == 2 else pool[rng.integers(len(pool))]
        else:
            text = " ".join(pool[j] for j in rng.integers(len(pool), size=3))
        turns.append({"conversation_id": f"bench-{conv}", "turn_index": idx, "role": role, "text": text,
                      "app": ["support-bot", "tutor"][conv % 2],
                      "model": {"provider": "openai", "name": "gpt-4o-mini", "version": "2024-07-18"}})
    return turns


class _Receiver:
    def __init__(self):
        self.arrivals: list[tuple[float, dict]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrivals.append((time.time(), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, float]:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    except OSError:
        return {}
    return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition → {'name{labels}': value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def histogram_buckets(scrape: dict[str, float], name: str, label: str) -> dict[str, list[tuple[float, float]]]:
    """A Prometheus histogram from a /metrics scrape (_scrape): `label`'s value → [(le, cumulative count)],
    sorted by le, +Inf last."""
    out: dict[str, list[tuple[float, float]]] = {}
    prefix = f"{name}_bucket{{"
    for key, count in scrape.items():
        if not key.startswith(prefix):
            continue
        labels = dict(_LABEL.findall(key[len(prefix) - 1:]))
        if label in labels and "le" in labels:
            out.setdefault(labels[label], []).append((float(labels["le"]), count))
    return {k: sorted(v) for k, v in out.items()}


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram's cumulative buckets, interpolated linearly inside the bucket that
    holds it, as Prometheus' histogram_quantile(): exact only to the bucket's width; the lowest bucket starts at 0;
    a quantile in the +Inf bucket is the highest finite bound. None when the histogram is empty."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not in [0, 1]")
    buckets = sorted(buckets)
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for i, (le, cumulative) in enumerate(buckets):
        if cumulative >= rank and cumulative > below:
            if math.isinf(le):
                return buckets[i - 1][0] if i else None
            return lower + (le - lower) * (rank - below) / (cumulative - below)
        lower, below = le, cumulative
    return None


def alert_hops(scrape: dict[str, float]) -> dict[str, dict]:
    """Per hop of the alert path (alerting/hops.py): observations, mean (exact, from _sum/_count) and
    bucket-interpolated p50/p99 of convmon_alert_hop_seconds."""
    name = "convmon_alert_hop_seconds"
    buckets = histogram_buckets(scrape, name, "hop")
    out = {}
    for hop in HOPS:
        n = scrape.get(f'{name}_count{{hop="{hop}"}}', 0.0)
        total = scrape.get(f'{name}_sum{{hop="{hop}"}}', 0.0)
        b = buckets.get(hop, [])
        finite = [c for le, c in b if not math.isinf(le)]
        out[hop] = {"n": int(n), "mean": round(total / n, 4) if n else None,
                    **{f"p{int(q * 100)}": _round(histogram_quantile(b, q)) for q in (0.5, 0.99)},
                    # beyond the last bucket a quantile reads as its bound: then only a lower bound
                    "over_last_bucket": int(n - finite[-1]) if finite else int(n)}
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def _proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process and its children (the scoring process), from /proc."""
    rss, cpu = 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) / 1024
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        cpu += (int(fields[11]) + int(fields[12])) / ticks
    return rss, cpu


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 4) if xs else float("nan")


def _run(settings: Settings, turns: list[dict], rate: float | None, log: Callable[[str], None], label: str,
         profile: Path | None = None) -> dict:
    tag = uuid.uuid4().hex[:8]
    rx = _Receiver()
    port = _free_port()
    var = Path(tempfile.mkdtemp(prefix=f"convmon-bench-{label}-"))
    topics = {k: f"bench{tag}.{k}" for k in ("turns", "dlq", "scores", "alerts", "signals")}
    env = dict(os.environ, CONVMON_VAR=str(var), CONVMON_KAFKA_BOOTSTRAP=settings.kafka.bootstrap,
               CONVMON_WORKER__APP_ID=f"convmon-bench-{tag}", CONVMON_WORKER__METRICS_PORT=str(port),
               CONVMON_LOG_LEVEL="warning", CONVMON_TEST_WEBHOOK_SECRET="bench",
               CONVMON_ALERTING__CHANNELS=json.dumps([{"type": "webhook", "name": "bench", "url": rx.url,
                                                        "secret_env": "CONVMON_TEST_WEBHOOK_SECRET"}]),
               # each run its own outbox topic too: a shared one was read again, from the start, by the next run's
               # delivery (its own consumer group), which then counted the earlier run's pages as its own
               CONVMON_TOPICS__OUTBOX_PREFIX=f"bench{tag}.outbox",
               **{f"CONVMON_TOPICS__{k.upper()}": v for k, v in topics.items()})
    env.pop("CONVMON_CONFIG", None)
    logf = open(var / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "convmon.cli", "worker"], env=env, stdout=logf, stderr=logf)
    try:
        deadline = time.monotonic() + 120
        while "convmon_consumer_lag" not in " ".join(_scrape(port)) and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited early; see {var / 'worker.log'}")
            time.sleep(0.5)
        time.sleep(3)  # partitions assigned, models loaded
        lag_series: list[tuple[float, float]] = []
        rss_max = 0.0
        cpu0 = _proc_stats(worker.pid)[1]
        recorder = Recorder(worker.pid, profile) if profile else None
        t_start = time.time()
        done = threading.Event()

        def publish():
            with TurnPublisher.from_settings(settings.kafka, topics["turns"]) as pub:
                start = time.monotonic()
                for i, t in enumerate(turns):
                    if rate:
                        ahead = i / rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
                    pub.publish({**t, "ts": format_ts(datetime.now(timezone.utc))})
            done.set()

        threading.Thread(target=publish, daemon=True).start()
        n = len(turns)
        deadline = time.monotonic() + max(600, n / 5)
        while time.monotonic() < deadline:
            m = _scrape(port)
            scored = m.get('convmon_turns_total{outcome="scored"}', 0.0)
            lag = sum(v for k, v in m.items() if k.startswith("convmon_consumer_lag{") and topics["turns"] in k)
            lag_series.append((round(time.time() - t_start, 1), lag))
            rss_max = max(rss_max, _proc_stats(worker.pid)[0])
            if done.is_set() and scored >= n:
                break
            time.sleep(1.0)
        if recorder:
            recorder.stop()
        time.sleep(3)  # alerts agent and channel delivery finish
        final = _scrape(port)
        cpu = _proc_stats(worker.pid)[1] - cpu0
        worker.send_signal(signal.SIGTERM)
        worker.wait(90)
    finally:
        if worker.poll() is None:
            worker.kill()
        logf.close()
        rx.server.shutdown()

    # rows: produce (ts) → inserted (ingested_at), read after the worker released the embedded store
    q = subprocess.run([sys.executable, "-m", "convmon.cli", "db", "query", "--json",
                        "SELECT toUnixTimestamp64Milli(ts) AS t, toUnixTimestamp64Milli(ingested_at) AS i FROM turns FINAL"],
                       env=env, capture_output=True, text=True, timeout=120)
    rows = [json.loads(l) for l in q.stdout.splitlines() if l.strip()]
    lat = [(r["i"] - r["t"]) / 1000 for r in rows]
    first, last = min(r["t"] for r in rows) / 1000, max(r["i"] for r in rows) / 1000
    alert_lat = [arr - datetime.fromisoformat(b["alert"]["ts"]).timestamp()
                 for arr, b in rx.arrivals if b["status"] == "firing" and b["alert"]["kind"] == "toxic_turn"]
    stages = {k.split('"')[1]: round(v, 2) for k, v in final.items() if k.startswith("convmon_stage_seconds_total{")}
    return {
        "label": label, "turns": n, "stored": len(rows), "offered_rate": rate,
        "turns_per_s": round(len(rows) / (last - first), 1),
        "produce_to_row_s": {"p50": _pct(lat, 50), "p95": _pct(lat, 95), "p99": _pct(lat, 99)},
        "alerts_delivered": len(alert_lat),
        "alert_latency_s": {"p50": _pct(alert_lat, 50), "p99": _pct(alert_lat, 99)},
        "stage_seconds": stages,
        "alert_hops_s": alert_hops(final),
        "worker_rss_mib_max": round(rss_max, 1),
        "cpu_seconds": round(cpu, 2), "cpu_ms_per_turn": round(1000 * cpu / max(n, 1), 3),
        "consumer_lag": lag_series,
    }


def _encoder_passes(turns: list[dict], threads: int) -> list[float]:
    from convmon_dev.modelsuite.build import int8_graph
    from convmon.scoring.suite import Encoder

    models = default_model_dir()
    texts = [t["text"] for t in turns]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        enc = Encoder(int8_graph(models, tmp / "e.onnx"), models / "tokenizer.json", threads)
        enc.run(texts[:32])
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(0, len(texts), 512):
                enc.run(texts[i:i + 512])
            rates.append(round(len(texts) / (time.perf_counter() - t0), 1))
        return rates


def run_e2e_bench(settings: Settings, n: int = 4000, log: Callable[[str], None] = print,
                  profile: Path | None = None) -> dict:
    turns = make_turns(n)
    # The ceiling brackets the throughput run: three passes before it and three after. One pass on a shared
    # 2-core VM varies by ±20%, and the host's speed drifts within minutes; the median of the six is the
    # ceiling the run is divided by.
    log(f"bare encoder ceiling on the same {n} turns (3 passes)…")
    passes = _encoder_passes(turns, settings.worker.scoring_threads)
    log(f"  {passes} turns/s")
    log(f"run 1/2: {n} turns as fast as possible…")
    fast = _run(settings, turns, None, log, "throughput", profile)
    log(f"  {fast['turns_per_s']} turns/s sustained")
    log("bare encoder ceiling again (3 passes)…")
    passes += _encoder_passes(turns, settings.worker.scoring_threads)
    log(f"  {passes[3:]} turns/s")
    ceiling = round(statistics.median(passes), 1)
    half = round(fast["turns_per_s"] / 2, 1)
    m = min(n, max(1000, int(half * 30)))
    log(f"run 2/2: {m} turns at {half} turns/s (half the sustained rate)…")
    slow = _run(settings, make_turns(m), half, log, "latency")
    report = {
        "command": f"convmon bench e2e --turns {n}",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_cores": os.cpu_count(),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "scoring_threads": settings.worker.scoring_threads,
        "mean_text_chars": round(statistics.mean(len(t["text"]) for t in turns), 1),
        "turns_per_s": fast["turns_per_s"],
        "turns_per_s_per_core": round(fast["turns_per_s"] / (os.cpu_count() or 1), 1),
        "encoder_ceiling_turns_per_s": ceiling,
        "encoder_ceiling_passes": {"before": passes[:3], "after": passes[3:]},
        "e2e_fraction": round(fast["turns_per_s"] / ceiling, 3),
        "produce_to_row_p99_s": slow["produce_to_row_s"]["p99"],
        "alert_latency_p99_s": slow["alert_latency_s"]["p99"],
        # from the worker's convmon_alert_hop_seconds at the end of the latency run (alerting/hops.py)
        "alert_hops_p99_s": {hop: v["p99"] for hop, v in slow["alert_hops_s"].items()},
        "alert_hops_note": HOPS_NOTE,
        "runs": {"throughput": fast, "latency": slow},
    }
    if profile:
        prof = summarize(profile)
        profile.with_suffix(".json").write_text(json.dumps(prof, indent=2) + "\n")
        report["profile"] = {"collapsed_stacks": str(profile), **prof}
    return report


HOPS_NOTE = ("alert_hops_s: per hop of the alert path (convmon/alerting/hops.py), from Kafka record timestamps; "
             "p50/p99 are interpolated inside convmon_alert_hop_seconds' buckets (as Prometheus "
             "histogram_quantile), so exact only to a bucket's width, and a quantile among over_last_bucket (> 10 s) reads "
             "as 10, a lower bound; mean is exact. score counts every alert record "
             "the turns agent publishes, the other hops firing pages only. score/alerts_topic and decide/outbox_topic "
             "share the produce→ack interval, so the hops add up to a little more than produce→alert.")


def hops_line(hops: dict[str, dict]) -> str:
    """hop p50/p99 for the summary; a quantile that fell beyond the last bucket is shown as ≥ its bound."""
    def q(v: dict, p: str) -> str:
        censored = v[p] is not None and v.get("over_last_bucket", 0) > (1 - int(p[1:]) / 100) * v["n"]
        return ("≥" if censored else "") + _fmt(v[p])

    return "  ".join(f"{hop} {q(v, 'p50')}/{q(v, 'p99')}" for hop, v in hops.items())


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def summary(r: dict) -> str:
    f, s = r["runs"]["throughput"], r["runs"]["latency"]
    return "\n".join([
        f"sustained          {r['turns_per_s']} turns/s on {r['cpu_cores']} cores ({r['turns_per_s_per_core']}/core)",
        f"encoder ceiling    {r['encoder_ceiling_turns_per_s']} turns/s  → e2e fraction {r['e2e_fraction']}",
        f"stage seconds      {f['stage_seconds']}",
        f"worker RSS max     {f['worker_rss_mib_max']} MiB; CPU {f['cpu_ms_per_turn']} ms/turn",
        f"at {s['offered_rate']} turns/s: produce→row p50/p95/p99 {s['produce_to_row_s']['p50']}/"
        f"{s['produce_to_row_s']['p95']}/{s['produce_to_row_s']['p99']} s; produce→alert p50/p99 "
        f"{s['alert_latency_s']['p50']}/{s['alert_latency_s']['p99']} s ({s['alerts_delivered']} alerts)",
        f"alert hops p50/p99 s (bucket-interpolated): {hops_line(s['alert_hops_s'])}",
    ] + ([profile_text(r["profile"])] if "profile" in r else []))
