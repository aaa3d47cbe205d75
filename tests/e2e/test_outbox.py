"""OutboxDelivery against the real broker: a record is committed only once its channel has accepted it.

The worker-level test (1,500 pages, a 60 s outage, a restart) is in test_faults.py; these drive the
delivery stage alone, so that committed offsets can be read exactly."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiohttp import web

from convmon.alerting import outbox
from convmon.alerting.channels import WebhookChannel
from convmon.alerting.delivery import Dispatcher
from convmon.alerting.model import Alert, Notification
from convmon.alerting.outbox_delivery import OutboxDelivery

from .test_alerting import free_port

pytestmark = pytest.mark.e2e


class Hook:
    """A webhook that refuses while `down` (503), then records each accepted page's dedup key."""

    def __init__(self, down: bool = False, refuse: int = 0):
        self.down, self.refuse, self.got, self.port = down, refuse, [], free_port()

    async def handle(self, request):
        if self.down or self.refuse:
            self.refuse = max(0, self.refuse - 1)
            return web.Response(status=503)
        self.got.append(json.loads(await request.read())["dedup_key"])
        return web.Response(status=200)

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def page(i: int) -> bytes:
    return outbox.encode(Notification(Alert(kind="toxic_turn", severity="warning", summary="s", dedup_key=f"k{i}"),
                                      1, None, "firing"))


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 2) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, v in enumerate(values):
        p.send(topic, key=f"k{i}".encode(), value=v)
    p.flush()
    p.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int = 2) -> int:
    """Records committed by `group`, over all partitions."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(c.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))
    finally:
        c.close()


def delivery(bootstrap: str, topic: str, group: str, port: int) -> OutboxDelivery:
    from aiokafka import AIOKafkaConsumer

    def consumer(listener):
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        c.subscribe([topic], listener=listener)
        return c

    channel = WebhookChannel("hook", f"http://127.0.0.1:{port}/hook", "s")
    d = Dispatcher([channel], backoff_base_s=0.05, backoff_cap_s=0.2)
    unreadable = []
    od = OutboxDelivery(consumer, {"hook": topic}, {"hook": d}, on_unreadable=unreadable.append)
    od.unreadable = unreadable
    return od


async def until(cond, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond() and loop.time() < deadline:
        await asyncio.sleep(0.1)
    assert cond(), "condition not reached in time"


def test_records_are_committed_once_delivered_and_a_bad_one_is_skipped(broker):
    topic, group = f"t{uuid.uuid4().hex[:8]}.outbox.hook", f"g{uuid.uuid4().hex[:8]}"
    produce(broker, topic, [page(0), b"{not an outbox record", page(1), page(2)])

    async def go():
        async with Hook(refuse=2) as hook:
            od = delivery(broker, topic, group, hook.port)
            task = asyncio.create_task(od.run())
            await until(lambda: len(hook.got) == 3)
            await until(lambda: not od.positions.due())  # committed
            await od.stop()
            await task
            return hook.got, od.unreadable

    got, unreadable = asyncio.run(go())
    assert sorted(got) == ["k0", "k1", "k2"] and unreadable == ["hook"]
    assert committed(broker, group, topic) == 4


def test_nothing_undelivered_is_committed_and_the_next_run_delivers_it_once(broker):
    topic, group = f"t{uuid.uuid4().hex[:8]}.outbox.hook", f"g{uuid.uuid4().hex[:8]}"
    produce(broker, topic, [page(i) for i in range(50)])

    async def go():
        async with Hook(down=True) as hook:
            od = delivery(broker, topic, group, hook.port)
            task = asyncio.create_task(od.run())
            await until(lambda: od.dispatchers["hook"].stats()["hook"]["pending"] == 50)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await od.stop(drain_timeout_s=1.0)  # the channel is down: stop must not wait for it
            await task
            stop_s = loop.time() - t0
            before = committed(broker, group, topic)
            hook.down = False
            od = delivery(broker, topic, group, hook.port)  # "after the restart"
            task = asyncio.create_task(od.run())
            await until(lambda: len(hook.got) == 50)
            await until(lambda: not od.positions.due())
            await asyncio.sleep(1)  # let any (wrong) repeat arrive
            await od.stop()
            await task
            return before, stop_s, hook.got

    before, stop_s, got = asyncio.run(go())
    assert before == 0 and stop_s < 15
    assert sorted(got) == sorted(f"k{i}" for i in range(50))  # each exactly once
    assert committed(broker, group, topic) == 50
