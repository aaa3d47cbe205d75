"""Kafka client connection errors are throttled (convmon/logs.py): a broker restart must not flood the log."""

from __future__ import annotations

import logging

from convmon.logs import Throttle, throttle_kafka_client_logs


def test_a_repeated_client_error_passes_once_per_interval_and_says_how_many_were_held_back(caplog):
    now = [0.0]
    f = Throttle(every_s=10, clock=lambda: now[0])
    log = logging.getLogger("aiokafka.client.test-throttle")
    log.addFilter(f)
    try:
        with caplog.at_level(logging.ERROR, logger=log.name):
            for i in range(5000):  # a tight retry loop while the broker is away
                now[0] = i * 0.004
                log.error("Unable connect to node with id %s: %s", 1, "refused")
            log.error("a different message")
            now[0] = 20.5
            log.error("Unable connect to node with id %s: %s", 1, "refused")
    finally:
        log.removeFilter(f)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # at 0 and 10 s of the 20 s loop, the different one, and the one after the loop
    assert lines[0] == "Unable connect to node with id 1: refused"
    assert lines[1].startswith("Unable connect to node with id 1: refused [") and "more like this" in lines[1]
    assert lines[2] == "a different message" and lines[3].endswith("[2499 more like this in the last 10s]")


def test_the_worker_throttles_the_kafka_client_loggers():
    f = throttle_kafka_client_logs()
    try:
        assert f in logging.getLogger("aiokafka.client").filters
        assert f in logging.getLogger("aiokafka.consumer.fetcher").filters
    finally:
        for name in ("aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.fetcher",
                     "aiokafka.consumer.group_coordinator", "aiokafka.consumer.consumer", "aiokafka.producer.sender",
                     "aiokafka.producer.producer", "kafka.client", "kafka.conn"):
            logging.getLogger(name).removeFilter(f)
