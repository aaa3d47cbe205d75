"""`convmon kafka up|down|status|logs`: the local single-node broker, via infra/kafka/kafka.sh.

The script fetches pinned Apache Kafka jars from Maven Central once (cached outside the
repository), formats KRaft storage under <var>/kafka and runs the broker on 127.0.0.1. It
honours KAFKA_HOME. When CONVMON_KAFKA_BOOTSTRAP names an external broker, there is nothing
to start and these commands say so.
"""

from __future__ import annotations

import os
import subprocess

from .config import Settings
from .resources import data_path

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def script_path() -> str:
    return str(data_path("infra/kafka/kafka.sh"))


def local_port(settings: Settings) -> int | None:
    """The port of the local broker this config points at, or None for an external broker."""
    hosts = [h.strip() for h in settings.kafka.bootstrap.split(",")]
    if len(hosts) != 1:
        return None
    host, _, port = hosts[0].rpartition(":")
    if host not in LOCAL_HOSTS or not port.isdigit():
        return None
    return int(port)


def run(settings: Settings, command: str, capture: bool = False) -> subprocess.CompletedProcess:
    port = local_port(settings)
    if port is None:
        raise SystemExit(
            f"kafka.bootstrap is {settings.kafka.bootstrap!r}, an external broker: convmon does not manage it. "
            "Unset CONVMON_KAFKA_BOOTSTRAP to use the local broker."
        )
    env = dict(os.environ, CONVMON_VAR=str(settings.var), CONVMON_KAFKA_PORT=str(port),
               CONVMON_KAFKA_PARTITIONS=str(settings.topics.partitions))
    return subprocess.run(["bash", script_path(), command], env=env, text=True,
                          capture_output=capture, check=False)
