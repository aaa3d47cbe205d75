"""Log hygiene: the Kafka client's connection errors, throttled.

While the broker is away, aiokafka logs every failed attempt ("Unable connect to node …", "Unable to update
metadata …", "Failed fetch messages …") in a tight loop: a 10-second broker restart wrote 84,000 lines to one
worker's log (issue 20's chaos run), burying the lines that matter. The same message template from the same
logger now passes at most once per `every_s`; the next one that passes says how many were held back.
"""

from __future__ import annotations

import logging
import time

# Loggers of the Kafka clients that repeat connection errors on every retry.
NOISY = ("aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.fetcher",
         "aiokafka.consumer.group_coordinator", "aiokafka.consumer.consumer", "aiokafka.producer.sender",
         "aiokafka.producer.producer", "kafka.client", "kafka.conn")


class Throttle(logging.Filter):
    """Passes a (logger, message template) at most once per `every_s`; counts what it holds back."""

    def __init__(self, every_s: float = 10.0, clock=time.monotonic):
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # key → (when it last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} more like this in the last {now - last[0]:.0f}s]"
        self._last[key] = (now, 0)
        if len(self._last) > 1000:  # many distinct templates: start over rather than grow
            self._last = {key: (now, 0)}
        return True


def throttle_kafka_client_logs(every_s: float = 10.0) -> Throttle:
    f = Throttle(every_s)
    for name in NOISY:
        logging.getLogger(name).addFilter(f)
    return f
