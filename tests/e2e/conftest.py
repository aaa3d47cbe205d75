"""End-to-end fixtures: the real local Kafka broker and real `convmon worker` processes.

The broker is started once per session (infra/kafka/kafka.sh up; a no-op when it runs).
Each test gets its own topics, consumer group and embedded ClickHouse path, so tests do
not see each other's data. Results are read back the way a user would: from the Kafka
topics and with `convmon db query` once the worker (which owns the embedded path) stopped.
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

import pytest

REPO = Path(__file__).resolve().parents[2]
# The broker the tests use: CONVMON_TEST_KAFKA_BOOTSTRAP (a broker someone else runs), else the local broker
# that `make test` starts, on CONVMON_KAFKA_BOOTSTRAP when 9092 is taken (as `convmon kafka up` does).
BOOTSTRAP = os.environ.get("CONVMON_TEST_KAFKA_BOOTSTRAP") or os.environ.get("CONVMON_KAFKA_BOOTSTRAP") or "127.0.0.1:9092"


@pytest.fixture(scope="session")
def broker() -> str:
    if "CONVMON_TEST_KAFKA_BOOTSTRAP" not in os.environ:
        r = subprocess.run(["bash", str(REPO / "infra/kafka/kafka.sh"), "up"], capture_output=True, text=True)
        assert r.returncode == 0, f"local Kafka broker did not start:\n{r.stdout}\n{r.stderr}"
    return BOOTSTRAP


@pytest.fixture
def e2e(broker, tmp_path):
    return Env(broker, tmp_path)


PSEUDONYM_KEY = "e2e-pseudonym-key"


class Env:
    """One isolated convmon deployment on the shared broker."""

    @staticmethod
    def ps(conversation_id: str) -> str:
        """The pseudonym the workers store and publish for a conversation id (convmon/privacy.py)."""
        from convmon.privacy import pseudonym

        return pseudonym(PSEUDONYM_KEY.encode(), conversation_id)

    def ps_in(self, conversation_ids) -> str:
        """SQL list of the pseudonyms of these conversation ids."""
        return "(" + ",".join(f"'{self.ps(c)}'" for c in conversation_ids) + ")"

    def __init__(self, bootstrap: str, tmp: Path):
        tag = uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.topics = {k: f"t{tag}.{k}" for k in ("turns", "dlq", "scores", "alerts", "signals", "feedback")}
        self.env = dict(
            os.environ,
            CONVMON_KAFKA_BOOTSTRAP=bootstrap,
            CONVMON_VAR=str(tmp / "var"),
            CONVMON_WORKER__APP_ID=f"convmon-test-{tag}",
            CONVMON_WORKER__BATCH_WITHIN_S="0.2",
            CONVMON_TOPICS__TURNS=self.topics["turns"],
            CONVMON_TOPICS__DLQ=self.topics["dlq"],
            CONVMON_TOPICS__SCORES=self.topics["scores"],
            CONVMON_TOPICS__ALERTS=self.topics["alerts"],
            CONVMON_TOPICS__SIGNALS=self.topics["signals"],
            CONVMON_TOPICS__FEEDBACK=self.topics["feedback"],
            CONVMON_TOPICS__OUTBOX_PREFIX=f"t{tag}.outbox.",
            CONVMON_LOG_LEVEL=os.environ.get("CONVMON_TEST_WORKER_LOG_LEVEL", "info"),
            CONVMON_PRIVACY__PSEUDONYM_KEY=PSEUDONYM_KEY,
        )
        self.env.pop("CONVMON_CONFIG", None)
        self.bootstrap = bootstrap
        self.workers: list[Worker] = []

    def worker(self, name: str = "w", argv: list[str] | None = None) -> "Worker":
        """A worker process (`argv`: another command that runs one, e.g. with a fault injected)."""
        w = Worker(self.env, self.tmp / f"{name}-{len(self.workers)}.log", argv)
        self.workers.append(w)
        return w

    def convmon(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "convmon.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def query(self, sql: str) -> list[dict]:
        r = self.convmon("db", "query", "--json", sql)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def consumer(self, *topics: str):
        from kafka import KafkaConsumer

        return KafkaConsumer(*topics, bootstrap_servers=self.bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=1000)

    def cleanup(self):
        for w in self.workers:
            w.kill()


class Worker:
    def __init__(self, env: dict, log: Path, argv: list[str] | None = None):
        self.log = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen(argv or [sys.executable, "-m", "convmon.cli", "worker"], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=REPO)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._log.close()
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(autouse=True)
def _cleanup_workers(request):
    yield
    env = request.node.funcargs.get("e2e")
    if isinstance(env, Env):
        env.cleanup()
