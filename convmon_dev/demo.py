"""`convmon demo`: replay sample conversations through the live pipeline and report.

Steps: make sure the broker is up (local one started if needed), start a worker process,
publish the sample turns plus a few malformed records, follow chat.scores and the DLQ
until every turn is accounted for, stop the worker with SIGTERM (it owns the embedded
ClickHouse), then read ClickHouse and print what convmon found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import click

from convmon.config import Settings
from convmon.kafka_clients import client_config
from convmon.redact import mask_url
from convmon.privacy import Protector, pseudonym
from convmon.produce import TurnPublisher, complete, read_jsonl
from convmon.scoring.suite import default_model_dir
from convmon.resources import data_path

MALFORMED = [
    (b"this is not json", "invalid_json"),
    (b'{"event_id": "x"}', "schema_violation"),
    (b"\xff\xfe broken bytes", "invalid_utf8"),
]


def sample_path() -> Path:
    return data_path("models/data/conversations/sample.jsonl")


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


def _broker_ready(settings: Settings) -> bool:
    from convmon import kafka_local

    if kafka_local.local_port(settings) is None:
        return True  # external broker: the user runs it
    if kafka_local.run(settings, "status", capture=True).returncode == 0:
        return True
    _echo("starting the local Kafka broker (first run downloads Kafka jars from Maven Central)…")
    return kafka_local.run(settings, "up").returncode == 0


def run_demo(settings: Settings, file: Optional[Path], timeout: float) -> int:
    from kafka import KafkaConsumer, TopicPartition

    file = file or sample_path()
    run_id = uuid.uuid4().hex[:8]
    turns = []
    for _, t in read_jsonl(file):
        t = dict(t, conversation_id=f"{run_id}-{t['conversation_id']}",
                 metadata={**(t.get("metadata") or {}), "demo_run": run_id})
        turns.append(complete(t))
    wanted = {t["event_id"] for t in turns}

    if not _broker_ready(settings):
        _echo("the Kafka broker did not start: see `convmon kafka logs`")
        return 1

    metrics_port = _free_port()
    env = dict(os.environ, CONVMON_VAR=str(settings.var), CONVMON_KAFKA_BOOTSTRAP=settings.kafka.bootstrap,
               CONVMON_WORKER__METRICS_PORT=str(metrics_port),
               CONVMON_PRIVACY__METADATA_RAW_KEYS=json.dumps(sorted({*settings.privacy.metadata_raw_keys, "demo_run"})),
               CONVMON_CLICKHOUSE_URL=settings.clickhouse.url)
    _echo("starting `convmon worker`…")
    log_path = settings.var / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w")
    worker = subprocess.Popen([sys.executable, "-m", "convmon.cli", "worker"], env=env, stdout=log_file,
                              stderr=subprocess.STDOUT)
    try:
        consumer = KafkaConsumer(**client_config(settings.kafka), enable_auto_commit=False, group_id=None)
        tps = []
        for topic in (settings.topics.scores, settings.topics.dlq):
            parts = None
            for _ in range(60):  # the worker creates its topics on start
                parts = consumer.partitions_for_topic(topic)
                if parts or worker.poll() is not None:
                    break
                time.sleep(0.5)
                consumer.topics()  # refresh metadata
            tps += [TopicPartition(topic, p) for p in (parts or [])]
        if worker.poll() is not None:
            _echo(f"the worker exited early (code {worker.returncode}); see {log_path}")
            return 1
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        for tp in tps:
            consumer.position(tp)

        with TurnPublisher.from_settings(settings.kafka, settings.topics.turns) as pub:
            for t in turns:
                pub.publish(t)
            for raw, _ in MALFORMED:
                pub.publish_raw(raw, key=b"demo-malformed")
        _echo(f"published {len(turns)} turns and {len(MALFORMED)} malformed records (run {run_id}); waiting for scores…")

        seen: set[str] = set()
        dead: list[str] = []
        deadline = time.monotonic() + timeout
        with click.progressbar(length=len(wanted), label="scored", file=sys.stderr) as bar:
            while (len(seen) < len(wanted) or len(dead) < len(MALFORMED)) and time.monotonic() < deadline:
                for tp, msgs in consumer.poll(timeout_ms=500).items():
                    for m in msgs:
                        if tp.topic == settings.topics.dlq:
                            headers = dict(m.headers or [])
                            dead.append(headers.get("convmon.reason", b"?").decode())
                            continue
                        eid = json.loads(m.value).get("event_id")
                        if eid in wanted and eid not in seen:
                            seen.add(eid)
                            bar.update(1)
                if worker.poll() is not None:
                    break
        consumer.close()
        protect = Protector.from_settings(settings)  # the worker's key: alerts carry conversation pseudonyms
        _wait_for_alerts(settings, metrics_port, {pseudonym(protect.key, t["conversation_id"]) for t in turns})
    finally:
        if worker.poll() is None:
            _echo("stopping the worker (SIGTERM)…")
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(settings.worker.shutdown_timeout_s + 15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        log_file.close()

    ok = len(seen) == len(wanted)
    if not ok:
        _echo(f"only {len(seen)}/{len(wanted)} turns were scored within {timeout:.0f}s; see {log_path}")
    _report(settings, run_id, len(wanted), dead)
    return 0 if ok else 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_alerts(settings: Settings, port: int, conversations: set[str], timeout: float = 30.0) -> None:
    """Let the alerts agent handle this run's alert candidates before the worker is stopped."""
    import re
    import urllib.request

    from kafka import KafkaConsumer

    c = KafkaConsumer(settings.topics.alerts, **client_config(settings.kafka), group_id=None,
                      auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=2000)
    candidates = sum(1 for m in c if json.loads(m.value).get("conversation_id") in conversations
                     or json.loads(m.value).get("conversation_id") is None)
    c.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
        except OSError:
            break
        handled = sum(float(v) for v in re.findall(r"^convmon_alerts_total\{[^}]*\} ([0-9.]+)$", text, re.M))
        if handled >= candidates:
            return
        time.sleep(0.5)


def _report(settings: Settings, run_id: str, n_turns: int, dead: list[str]) -> None:
    from convmon.store.clickhouse import connect

    client = connect(settings.clickhouse)
    where = "JSONExtractString(metadata, 'demo_run') = {run:String}"
    p = {"run": run_id}
    q = lambda sql: client.query(sql, parameters=p).result_rows  # noqa: E731

    stored, convs = q(f"SELECT count(), uniqExact(conversation_id) FROM turns FINAL WHERE {where}")[0]
    out = [
        "",
        f"convmon demo — run {run_id}",
        f"  turns published        {n_turns}",
        f"  turns stored           {stored} (in {convs} conversations, ClickHouse at {mask_url(settings.clickhouse.url)})",
        f"  dead-lettered          {len(dead)} ({', '.join(sorted(dead)) or 'none'})",
        "",
        "  by app and model version:",
    ]
    for app, name, ver, n in q(f"SELECT app, model_name, model_version, count() FROM turns FINAL WHERE {where} "
                                "GROUP BY ALL ORDER BY app, model_version"):
        out.append(f"    {app:<18} {name + ' ' + ver:<30} {n:>5} turns")
    out.append("")
    out.append("  turns containing PII or secrets (stored redacted):")
    rows = q(f"SELECT arrayJoin(pii) AS t, count() FROM turns FINAL WHERE {where} GROUP BY t ORDER BY t")
    out += [f"    {t:<14} {n:>4}" for t, n in rows] or ["    none"]
    for conv, idx, red in q(f"SELECT conversation_id, turn_index, text_redacted FROM turns FINAL WHERE {where} "
                            "AND pii_count > 0 ORDER BY conversation_id, turn_index LIMIT 3"):
        out.append(f"    e.g. {conv}#{idx}: {red[:100]}")
    out.append("")
    out.append("  model scores (one int8 encoder pass per turn; thresholds: the suite's calibrated decisions):")
    models_dir = Path(settings.scoring.models_dir or default_model_dir())
    thresholds = json.loads((models_dir / "manifest.json").read_text())["suite"]["thresholds"]
    t_tox, t_jb = float(thresholds["toxicity"]), float(thresholds["jailbreak"])
    (tox, jb, pol, neg, n_scored, unjudged), = q(  # the decisions as the suite made them (stored hit columns)
        f"SELECT countIf(toxicity_hit), countIf(jailbreak_hit), countIf(length(policy_hits) > 0), "
        f"countIf(sentiment_label = 'negative'), countIf(toxicity IS NOT NULL), countIf(language_supported = false) "
        f"FROM turns FINAL WHERE {where}")
    out.append(f"    scored by the model suite {n_scored} of {stored} turns; each signal flags:")
    for label, n in ((f"toxic (≥{t_tox:.2f})", tox), (f"jailbreak (≥{t_jb:.2f}, user/tool turns)", jb),
                     ("climate policy", pol), ("negative sentiment", neg), ("not judged (language)", unjudged)):
        out.append(f"      {label:<36} {n:>4}")
    for conv, idx, role, ev in q(f"SELECT conversation_id, turn_index, role, evidence FROM turns FINAL "
                                 f"WHERE {where} AND length(evidence) > 0 ORDER BY text_chars DESC LIMIT 2"):
        e = ev[0]
        sig, score, start, end, excerpt = (e[k] for k in ("signal", "score", "start", "end", "excerpt")) \
            if isinstance(e, dict) else e
        out.append(f"    e.g. {sig} {score:.2f} on {conv}#{idx} ({role}), chars {start}–{end}: \"{excerpt[:100]}\"")
    out.append("")
    out.append("  alerts (after dedup and grouping; no channel configured in the demo):")
    # this run's alerts: those on its conversations, and model-version alerts (no conversation) recorded
    # while its turns were being stored, not what earlier runs in the same var/ left behind
    rows = q("SELECT kind, countIf(delivery = 'notified'), countIf(delivery = 'suppressed') FROM alerts FINAL "
             f"WHERE conversation_id IN (SELECT conversation_id FROM turns WHERE {where}) "
             f"OR (conversation_id IS NULL AND recorded_at >= (SELECT min(ingested_at) FROM turns WHERE {where})) "
             "GROUP BY kind ORDER BY kind")
    out += [f"    {k:<18} {n:>3} incident(s) paged, {sup:>3} folded" for k, n, sup in rows] or ["    none"]
    out.append("")
    out.append("  query it yourself: .venv/bin/convmon db query \"SELECT app, count() FROM turns FINAL GROUP BY app\"")
    from convmon.report import build

    page = settings.var / "report.html"
    build(client, page)
    out.append(f"  charts: {page.resolve()} (open it in a browser; `.venv/bin/convmon report` writes it again)")
    click.echo("\n".join(out))
