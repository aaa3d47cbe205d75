"""The chaos run (issue 20): several workers in one consumer group on the real broker, random SIGKILLs and
restarts, one broker restart, tens of thousands of turns, malformed records and incidents paged through a
webhook and a Slack stand-in; then an idle group that must stay quiet.

One plan, two users: `tests/e2e/test_chaos.py` (short, in `make test`) and `convmon bench chaos` (longer,
seeded, writes bench/chaos-report.json). Everything is real except Slack, stood in by a local HTTP server that
checks the documented incoming-webhook payload.

What it checks, as a report (`checks` says which held):
* lost: every turn is in the union of the workers' embedded stores (each worker has its own chdb path; a
  ClickHouse server would hold one copy per event_id, as test_pipeline shows);
* doubled within a store: rows of one event_id in one store, counted without `FINAL` (which collapses them on
  read): the copies a re-delivery after a kill would leave (a background merge may already have folded some);
* every malformed record in the DLQ;
* pages: every incident the alert records call for is paged once: exactly one notification_id per incident at
  the webhook (its documented idempotency key), none missing; raw webhook deliveries and Slack posts per
  incident are counted, because Slack has no idempotency key and shows a repeat as a second message;
* rejoins and stall warnings during the run, with their reasons, and none while the group is idle.

Scoring models are off: chaos is about the group, the offsets, the stores and the pages, and three model
workers on two cores would measure the CPU instead. Incidents therefore enter as alert records on chat.alerts
(the score stage's output contract), keyed by dedup key as the score stage publishes them.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "infra/kafka/kafka.sh"


@dataclass
class ChaosPlan:
    seed: int = 20
    turns: int = 20_000
    workers: int = 3
    partitions: int = 4
    chaos_s: float = 75.0  # kills (and the broker restart) happen in this window, while the second half arrives
    kill_every_s: tuple[float, float] = (6.0, 15.0)
    min_kills: int = 3  # the window is extended until this many SIGKILLs happened (a slow broker restart)
    restart_after_s: tuple[float, float] = (1.0, 4.0)
    broker_down_s: float = 10.0  # 0: no broker restart
    incidents: int = 40
    malformed: int = 3
    idle_s: float = 120.0
    stall_after_s: float = 15.0  # the watchdog's patience: short, so that the idle window spans many checks
    finish_timeout_s: float = 420.0


# --- stand-ins for on-call ---------------------------------------------------------------------------------


class OnCall:
    """One local HTTP server: /hook records convmon webhook bodies, /slack checks and records Slack
    incoming-webhook payloads (`text` plus `blocks` of section blocks; a bad payload gets Slack's 400)."""

    def __init__(self):
        self.hook: list[dict] = []
        self.slack: list[dict] = []
        self.bad_slack = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 200
                if self.path == "/hook":
                    outer.hook.append(body)
                elif self.path == "/slack" and isinstance(body.get("text"), str) and all(
                        b.get("type") == "section" for b in body.get("blocks", [None])):
                    outer.slack.append(body)
                else:
                    outer.bad_slack += 1
                    status = 400
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"invalid_payload")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def firing_hook(self) -> list[dict]:
        return [p for p in self.hook if p["status"] == "firing" and p["alert"]["kind"] == "toxic_turn"]

    def slack_keys(self) -> list[str]:
        """The dedup key of every firing toxic_turn Slack post (from its Dedup key field)."""
        out = []
        for p in self.slack:
            if "[FIRING] toxic_turn" not in p["text"]:
                continue
            for f in p["blocks"][1].get("fields", []):
                if f["text"].startswith("*Dedup key*\n"):
                    out.append(f["text"].split("\n", 1)[1].replace("&amp;", "&"))
        return out


# --- workers ----------------------------------------------------------------------------------------------


class Worker:
    """One `convmon worker` process slot: killed and restarted on the same embedded store path and log."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log, self.proc = env, log, None
        self.starts = 0

    def start(self) -> None:
        with open(self.log, "a") as f:
            f.write(f"=== chaos: start {self.starts} ===\n")
            self.proc = subprocess.Popen([sys.executable, "-m", "convmon.cli", "worker"], env=self.env, stdout=f,
                                         stderr=subprocess.STDOUT, cwd=REPO)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(30)

    def terminate(self, timeout: float = 90) -> Optional[int]:
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            return None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


STALL = re.compile(r"partition (\S+) stalled: position (\d+) of (\d+), committed offset (\S+), no progress for (\d+)s")
REJOIN = re.compile(r"partition (\S+) still stalled at (\d+) of (\d+) after a re-read; rejoining")
ESCALATE = re.compile(r"partition (\S+) stalled at (\d+) of (\d+) for (\d+)s: neither a re-read nor a rejoin")


# stream/rereads.py's and stream/consumer.py's lines: how often the re-read machinery acted in a run
REREAD_LINES = {"rereads": re.compile(r"the consumer skipped offsets \d+\.\.\d+ of \S+; reading them again"),
                "holes_reopened": re.compile(r"were skipped on every re-read, but the broker"),
                "holes_confirmed": re.compile(r"do not exist \(read again, still absent; the broker has no record")}


def reread_counts(text: str) -> dict[str, int]:
    return {k: len(p.findall(text)) for k, p in REREAD_LINES.items()}


def watchdog_events(text: str) -> dict[str, list[str]]:
    """The stall warnings, rejoins and escalations a worker log holds (stream/watchdog.py's lines), one short line
    each with its reason (no chat text)."""
    return {"stalls": [f"{m[0]} at {m[1]} of {m[2]}, committed {m[3]}, no progress for {m[4]}s"
                       for m in STALL.findall(text)],
            "rejoins": [f"{m[0]} still stalled at {m[1]} of {m[2]} after a re-read" for m in REJOIN.findall(text)],
            "escalations": [f"{m[0]} at {m[1]} of {m[2]} for {m[3]}s" for m in ESCALATE.findall(text)]}


# --- data ---------------------------------------------------------------------------------------------------

TEXTS = [
    "How do I reset my password?", "Thanks, that worked.", "Can you summarise this article for me?",
    "Here is a summary of the article in three points.", "What time does the store open on Sunday?",
    "The store opens at 10 am on Sundays.", "I would like to change my booking to Friday.",
    "Your booking has been moved to Friday; you will get a confirmation email.",
]


def make_turns(n: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        conv, idx = divmod(i, 8)
        out.append({"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "conversation_id": f"chaos-{conv}",
                    "turn_index": idx, "role": "user" if idx % 2 == 0 else "assistant",
                    "text": f"{TEXTS[i % len(TEXTS)]} ({i})", "app": ["support-bot", "tutor"][conv % 2],
                    "ts": "2026-12-06T12:00:00.000Z",
                    "model": {"provider": "openai", "name": "gpt-4o-mini", "version": "2024-07-18"}})
    return out


def incident_key(i: int) -> str:
    return f"toxic_turn|app=chaos|model_name=m|model_version=v1|conversation_id=chaos-inc-{i}"


def incident_alert(i: int, repeat: int, rng: random.Random) -> tuple[bytes, bytes]:
    """An alert record as the score stage publishes it: incident i (its dedup key), the repeat-th alert of it."""
    from convmon import wire
    from convmon.alerting.model import Alert

    key = incident_key(i)
    a = Alert(kind="toxic_turn", severity="warning", summary=f"toxic user turn (incident {i}, alert {repeat})",
              dedup_key=key, app="chaos", model_name="m", model_version="v1", role="user",
              conversation_id=f"chaos-inc-{i}", turn_index=repeat, alert_id=str(uuid.UUID(int=rng.getrandbits(128))))
    return wire.encode_alert(a)


# --- the run ------------------------------------------------------------------------------------------------


class Kafka:
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def broker(self, action: str) -> None:
        r = subprocess.run(["bash", str(KAFKA_SH), action], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kafka.sh {action} failed: {r.stdout[-500:]} {r.stderr[-500:]}")

    def producer(self):
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", retries=20, linger_ms=5,
                             max_block_ms=120_000)

    def lag(self, group: str, topics: list[str]) -> Optional[int]:
        """Records not yet committed by `group` on `topics` (None while the group has no offsets)."""
        from kafka import KafkaAdminClient, KafkaConsumer
        from kafka.structs import TopicPartition

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        c = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            tps = [TopicPartition(t, p) for t in topics for p in (c.partitions_for_topic(t) or ())]
            ends = c.end_offsets(tps)
            committed = admin.list_group_offsets({group: None}).get(group, {})
            lag = 0
            for tp in tps:
                if ends[tp] == 0:
                    continue
                if tp not in committed:
                    return None
                lag += max(0, ends[tp] - committed[tp].offset)
            return lag
        finally:
            c.close()
            admin.close()

    def read_all(self, topic: str) -> list:
        from kafka import KafkaConsumer

        c = KafkaConsumer(topic, bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=3000)
        try:
            return list(c)
        finally:
            c.close()


def _query(env: dict, sql: str) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "convmon.cli", "db", "query", "--json", sql], env=env,
                       capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        raise RuntimeError(f"convmon db query failed: {r.stderr[-800:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def run_chaos(plan: ChaosPlan, bootstrap: str, workdir: Optional[Path] = None,
              log: Callable[[str], None] = print) -> dict:
    rng = random.Random(plan.seed)
    work = Path(workdir or tempfile.mkdtemp(prefix="convmon-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    kafka = Kafka(bootstrap)
    kafka.broker("up")
    tag = uuid.UUID(int=rng.getrandbits(128)).hex[:8] + uuid.uuid4().hex[:4]  # unique topics and group per run
    topics = {k: f"chaos{tag}.{k}" for k in ("turns", "dlq", "scores", "alerts", "signals", "feedback")}
    group = f"convmon-chaos-{tag}"
    oncall = OnCall()
    base = dict(os.environ, CONVMON_KAFKA_BOOTSTRAP=bootstrap, CONVMON_WORKER__APP_ID=group,
                CONVMON_SCORING__MODELS="false", CONVMON_WORKER__BATCH_SIZE="200",
                CONVMON_WORKER__BATCH_WITHIN_S="0.2", CONVMON_TOPICS__PARTITIONS=str(plan.partitions),
                CONVMON_WORKER__SESSION_TIMEOUT_S="10", CONVMON_WORKER__STALL_AFTER_S=str(plan.stall_after_s),
                CONVMON_TOPICS__OUTBOX_PREFIX=f"chaos{tag}.outbox.", CONVMON_LOG_LEVEL="info",
                CONVMON_PRIVACY__PSEUDONYM_KEY="chaos-pseudonym-key", CONVMON_CHAOS_HOOK_SECRET="chaos",
                CONVMON_CHAOS_SLACK_URL=oncall.url("slack"),
                CONVMON_ALERTING__CHANNELS=json.dumps([
                    {"type": "webhook", "name": "hook", "url": oncall.url("hook"), "secret_env": "CONVMON_CHAOS_HOOK_SECRET"},
                    {"type": "slack", "name": "slack", "url_env": "CONVMON_CHAOS_SLACK_URL"}]),
                **{f"CONVMON_TOPICS__{k.upper()}": v for k, v in topics.items()})
    base.pop("CONVMON_CONFIG", None)
    workers = [Worker(dict(base, CONVMON_VAR=str(work / f"var{i}")), work / f"worker{i}.log") for i in range(plan.workers)]
    turns = make_turns(plan.turns, rng)
    half = len(turns) // 2
    bad = [b'{"event_id": "chaos-bad-0", "text": ', b"chaos-bad-1 \xff\xfe not json",
           b'{"event_id": "chaos-bad-2", "conversation_id": "c", "turn_index": -1, "role": "robot", "text": "x"}']
    bad = (bad * (plan.malformed // len(bad) + 1))[:plan.malformed]
    events: list[str] = []  # what the chaos did, when (seconds since the start)
    t0 = time.monotonic()

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - t0:6.1f}s {what}")
        log(f"  {what}")

    producer = None
    try:
        for w in workers:
            w.start()
        log(f"{plan.workers} workers starting (group {group}, {plan.partitions} partitions)…")
        deadline = time.monotonic() + 120
        while "Ready" not in "".join(w.text() for w in workers) and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(10)  # every member joins and the group settles
        producer = kafka.producer()
        log(f"first half: {half} turns, {len(bad)} malformed records, {plan.incidents // 3} of {plan.incidents} incidents")
        for t in turns[:half]:
            producer.send(topics["turns"], key=t["conversation_id"].encode(), value=json.dumps(t).encode())
        for b in bad:
            producer.send(topics["turns"], value=b)
        early = plan.incidents // 3  # the other incidents begin during the chaos: their pages go out amid kills
        for i in range(early):
            k, v = incident_alert(i, 0, rng)
            producer.send(topics["alerts"], key=k, value=v)
        producer.flush()

        log(f"chaos for {plan.chaos_s:.0f}s: SIGKILL every {plan.kill_every_s[0]:.0f}-{plan.kill_every_s[1]:.0f}s, "
            f"a broker restart, the second half arriving meanwhile")
        broker_up = threading.Event()
        broker_up.set()

        def trickle():  # the second half, the later incidents and a repeat of each, spread over the chaos window
            items = [("turn", t) for t in turns[half:]]
            alerts = [incident_alert(j, 0, rng) for j in range(early, plan.incidents)]
            alerts += [incident_alert(j, 1, rng) for j in range(plan.incidents)]
            for j in reversed(range(len(alerts))):
                items.insert(j * len(items) // len(alerts), ("alert", alerts[j]))
            start, spread = time.monotonic(), plan.chaos_s * 0.8
            for j, (what, item) in enumerate(items):
                while not broker_up.is_set():
                    time.sleep(0.2)
                ahead = j * spread / len(items) - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
                if what == "alert":
                    producer.send(topics["alerts"], key=item[0], value=item[1])
                else:
                    producer.send(topics["turns"], key=item["conversation_id"].encode(), value=json.dumps(item).encode())
            producer.flush()

        pub = threading.Thread(target=trickle, daemon=True)
        pub.start()
        def restart_broker():  # in the background, so that the kill schedule goes on around it
            broker_up.clear()
            note("broker down")
            kafka.broker("down")
            time.sleep(plan.broker_down_s)
            kafka.broker("up")
            broker_up.set()
            note("broker up")

        chaos_end = time.monotonic() + plan.chaos_s
        broker_at = time.monotonic() + plan.chaos_s * rng.uniform(0.35, 0.55) if plan.broker_down_s else None
        broker = None
        next_kill = time.monotonic() + rng.uniform(*plan.kill_every_s)
        kills = 0
        while time.monotonic() < chaos_end or kills < plan.min_kills:
            now = time.monotonic()
            if broker_at is not None and now >= broker_at:
                broker_at = None
                broker = threading.Thread(target=restart_broker, daemon=True)
                broker.start()
            if now >= next_kill and broker_up.is_set():  # one fault at a time: kills wait for the broker
                i = rng.randrange(len(workers))
                workers[i].kill()
                kills += 1
                note(f"SIGKILL worker {i}")
                time.sleep(rng.uniform(*plan.restart_after_s))
                workers[i].start()
                note(f"restart worker {i}")
                next_kill = time.monotonic() + rng.uniform(*plan.kill_every_s)
            time.sleep(0.2)
        if broker is not None:
            broker.join(timeout=180)
            if not broker_up.is_set():
                raise RuntimeError("the broker did not come back; see var/kafka/logs")
        pub.join(timeout=300)
        log("last repeat of each incident; waiting for every record to be consumed and committed…")
        for i in range(plan.incidents):
            k, v = incident_alert(i, 2, rng)
            producer.send(topics["alerts"], key=k, value=v)
        producer.flush()
        consumed = [topics["turns"], topics["alerts"], topics["signals"]]
        deadline = time.monotonic() + plan.finish_timeout_s
        lag = None
        while time.monotonic() < deadline:
            lag = kafka.lag(group, consumed)
            keys = {p["dedup_key"] for p in oncall.firing_hook()}
            if lag == 0 and len(keys) >= plan.incidents:
                break
            for i, w in enumerate(workers):
                if not w.alive():
                    raise RuntimeError(f"worker {i} died on its own; see {w.log}")
            time.sleep(2)
        finished_s = time.monotonic() - t0
        note(f"consumed and committed (lag {lag})")

        marks = [len(w.text()) for w in workers]
        log(f"idle for {plan.idle_s:.0f}s: no stall warning and no rejoin allowed…")
        time.sleep(plan.idle_s)
        idle = [watchdog_events(w.text()[m:]) for w, m in zip(workers, marks)]
        exit_codes = [w.terminate() for w in workers]
    finally:
        if producer is not None:
            producer.close(timeout=10)
        for w in workers:
            w.kill()
        oncall.stop()

    log("reading the stores, the DLQ and the pages…")
    wanted = {t["event_id"] for t in turns}
    stores = []
    for w in workers:
        raw = _query(w.env, "SELECT toString(event_id) AS id, count() AS n FROM turns GROUP BY id")
        stores.append({"rows": sum(r["n"] for r in raw), "turns": len(raw), "ids": {r["id"] for r in raw},
                       "copies": sum(r["n"] - 1 for r in raw)})
    union = set().union(*(s["ids"] for s in stores))
    markers = [re.search(rb"chaos-bad-\d", b).group() for b in bad]
    dlq = kafka.read_all(topics["dlq"])
    dlq_found = {m.decode(): sum(1 for r in dlq if m in (r.value or b"")) for m in markers}

    hook = oncall.firing_hook()
    expected = {incident_key(i) for i in range(plan.incidents)}
    ids_per_key: dict[str, set] = {}
    deliveries_per_key: dict[str, int] = {}
    for p in hook:
        ids_per_key.setdefault(p["dedup_key"], set()).add(p["notification_id"])
        deliveries_per_key[p["dedup_key"]] = deliveries_per_key.get(p["dedup_key"], 0) + 1
    slack_per_key: dict[str, int] = {}
    for k in oncall.slack_keys():
        slack_per_key[k] = slack_per_key.get(k, 0) + 1
    texts = [w.text() for w in workers]
    logs = [watchdog_events(t) for t in texts]
    rereads = [reread_counts(t) for t in texts]
    run_events = {k: [f"worker {i}: {e}" for i, ev in enumerate(logs) for e in ev[k]] for k in ("stalls", "rejoins", "escalations")}
    idle_events = {k: [f"worker {i}: {e}" for i, ev in enumerate(idle) for e in ev[k]] for k in ("stalls", "rejoins", "escalations")}

    report = {
        "plan": asdict(plan),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chaos": {"kills": kills, "broker_restarts": int(bool(plan.broker_down_s)), "timeline": events},
        "turns": {"sent": len(turns), "stored_union": len(union & wanted), "lost": len(wanted - union),
                  "per_store": [s["turns"] for s in stores],
                  "doubled_within_a_store": sum(s["copies"] for s in stores),
                  "stored_by_more_than_one_store": sum(1 for e in union if sum(e in s["ids"] for s in stores) > 1),
                  "consumed_and_committed_after_s": round(finished_s, 1)},
        "dlq": {"malformed_sent": len(bad), "found": dlq_found, "records": len(dlq),
                "complete": all(v >= 1 for v in dlq_found.values())},
        "pages": {"incidents": plan.incidents,
                  "paged_once": sum(1 for k in expected if len(ids_per_key.get(k, ())) == 1),
                  "missing": sorted(expected - ids_per_key.keys()),
                  "paged_more_than_once": sorted(k for k, v in ids_per_key.items() if len(v) > 1),
                  "webhook_deliveries": len(hook),
                  "webhook_repeats_of_a_notification_id": len(hook) - sum(len(v) for v in ids_per_key.values()),
                  "slack_posts": sum(slack_per_key.values()),
                  "slack_incidents_posted_more_than_once": sum(1 for v in slack_per_key.values() if v > 1),
                  "slack_bad_payloads": oncall.bad_slack},
        "watchdog": {"during_run": {k: len(v) for k, v in run_events.items()}, "reasons": run_events,
                     "while_idle": {k: len(v) for k, v in idle_events.items()}, "idle_reasons": idle_events,
                     "idle_s": plan.idle_s},
        "rereads": {k: sum(c[k] for c in rereads) for k in REREAD_LINES},
        "worker_exit_codes": exit_codes,
        "logs": str(work),
    }
    p, t, d = report["pages"], report["turns"], report["dlq"]
    report["checks"] = {
        "nothing_lost": t["lost"] == 0,
        "nothing_doubled_within_a_store": t["doubled_within_a_store"] == 0,
        "dlq_complete": d["complete"],
        "every_incident_paged_once": p["paged_once"] == plan.incidents and not p["paged_more_than_once"],
        "slack_payloads_valid": p["slack_bad_payloads"] == 0,
        "idle_group_quiet": not any(report["watchdog"]["while_idle"].values()),
        "workers_stopped_cleanly": all(c == 0 for c in exit_codes),
    }
    report["ok"] = all(report["checks"].values())
    return report


def summary(r: dict) -> str:
    t, d, p, w = r["turns"], r["dlq"], r["pages"], r["watchdog"]
    lines = [
        f"chaos          {r['chaos']['kills']} SIGKILLs, {r['chaos']['broker_restarts']} broker restart, "
        f"{r['plan']['workers']} workers",
        f"turns          sent {t['sent']}, stored {t['stored_union']} (per store {t['per_store']}), lost {t['lost']}, "
        f"doubled within a store {t['doubled_within_a_store']}, stored by two stores {t['stored_by_more_than_one_store']}",
        f"dlq            {d['malformed_sent']} malformed sent, found {d['found']}",
        f"pages          {p['paged_once']}/{p['incidents']} incidents paged once (webhook deliveries "
        f"{p['webhook_deliveries']}, repeats of one id {p['webhook_repeats_of_a_notification_id']}); Slack posts "
        f"{p['slack_posts']}, incidents posted twice {p['slack_incidents_posted_more_than_once']}",
        f"watchdog       during the run {w['during_run']}; while idle {w['idle_s']:.0f}s {w['while_idle']}",
        "checks         " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items()),
    ]
    return "\n".join(lines)
