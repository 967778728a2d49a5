"""A real worker pushes the night's alerts to real receivers, signed while a secret rotates;
a rehearsal's alerts only to the receiver that asked for rehearsals."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from scripts.chaos import Outgoing
from scripts.night_builder import Night
from scripts.replay import build_outgoing
from streams.pipeline.webhooks import subscriber_id
from streams.store.keys import SubscriberKeys, election_namespace
from streams.store.outbox import Outbox
from tests.integration.helpers import WorkerProcess
from tests.integration.pipeline import DATA_DIR, ELECTION_ID, Pipeline
from tests.unit.test_webhook_signing import new_secret

# The exit poll and the first declarations: a handful of alerts of the opening minutes.
OPENING = 8


class Subscriber:
    """A newsroom's receiver that knows one secret and refuses what it cannot verify."""

    def __init__(self, secret: str) -> None:
        self.hook = Webhook(secret)
        self.verified: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            alert = self.hook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return web.Response(status=401)
        assert request.headers["webhook-id"] == alert["alert_id"]
        self.verified.append(alert["alert_id"])
        self.bodies.append(alert)
        return web.Response(status=204)

    async def serve(self) -> TestServer:
        application = web.Application()
        application.router.add_post("/hook", self.receive)
        server = TestServer(application, host="127.0.0.1")
        await server.start_server()
        return server


def on_the_live_night(feed: list[Outgoing]) -> list[Outgoing]:
    """The feed as the live night's producer sends it: every message says it is live."""
    return [
        dataclasses.replace(
            item, value=orjson.dumps({**orjson.loads(item.value), "rehearsal": False})
        )
        for item in feed
    ]


async def run_worker(
    pipeline: Pipeline, night: Night, env: dict[str, str], feed: list[Outgoing]
) -> WorkerProcess:
    """A worker started with `env`, the feed sent and every output of it published."""
    worker = WorkerProcess("streams.worker:app", env, name="webhooks")
    # The worker and the feed block; the receivers answer on this loop meanwhile.
    await asyncio.to_thread(worker.start)
    await asyncio.to_thread(worker.wait_for_log, "Ready", 120)
    await asyncio.to_thread(pipeline.send, feed)
    seats = sum(message.seat_declared for message in feed)
    await asyncio.to_thread(pipeline.wait_until_published, night.register, seats, 120)
    return worker


async def test_subscribers_on_the_old_and_the_new_secret_both_verify_every_alert(
    pipeline: Pipeline, night: Night
) -> None:
    old, new = new_secret(), new_secret()
    on_old, on_new = Subscriber(old), Subscriber(new)
    servers = [await on_old.serve(), await on_new.serve()]
    env = {
        **pipeline.env(),
        "ELECTION_MODE": "live",
        "ELECTION_WEBHOOK_URLS": orjson.dumps([str(s.make_url("/hook")) for s in servers]).decode(),
        # Mid-rotation: every POST carries a signature by each.
        "ELECTION_WEBHOOK_SECRETS": orjson.dumps([old, new]).decode(),
    }
    feed = on_the_live_night(build_outgoing(DATA_DIR)[:OPENING])
    worker: WorkerProcess | None = None
    try:
        worker = await run_worker(pipeline, night, env, feed)
        # Every seat of the feed tallied and its outputs queued: the alerts to expect are in.
        expected = await asyncio.to_thread(pipeline.outbox_alert_ids)
        deadline = time.monotonic() + 60
        while not on_old.verified == on_new.verified == expected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        if worker is not None:
            await asyncio.to_thread(worker.stop)
        for server in servers:
            await server.close()
    assert worker is not None
    assert len(expected) >= 3, f"too few alerts in the opening of the night: {expected}"
    assert on_old.verified == expected, worker.tail()
    assert on_new.verified == expected, worker.tail()
    assert {body["rehearsal"] for body in on_old.bodies} == {False}
    assert on_old.refused == on_new.refused == 0
    assert (
        "unsigned" not in worker.log()
        and "ELECTION_WEBHOOK_SECRET is deprecated" not in worker.log()
    )


async def accounting(pipeline: Pipeline, url: str) -> tuple[int, set[str], set[str], int]:
    """A subscriber's cursor, withheld and delivered alert ids, and dead letters, in Redis."""
    keys = SubscriberKeys.of(election_namespace(pipeline.prefix, ELECTION_ID), subscriber_id(url))
    redis = Redis.from_url(pipeline.redis_url, decode_responses=True)
    try:
        return (
            int(await redis.get(keys.cursor) or 0),
            set(await redis.smembers(keys.withheld)),
            set(await redis.smembers(keys.delivered)),
            await redis.llen(keys.dead),
        )
    finally:
        await redis.aclose()


async def last_queued(pipeline: Pipeline) -> int:
    redis = Redis.from_url(pipeline.redis_url)
    try:
        return (
            await Outbox(redis, election_namespace(pipeline.prefix, ELECTION_ID)).progress()
        ).queued
    finally:
        await redis.aclose()


async def test_a_rehearsals_alerts_reach_only_the_subscriber_that_asked_for_them(
    pipeline: Pipeline, night: Night
) -> None:
    secret = new_secret()
    apps, desk = Subscriber(secret), Subscriber(secret)
    servers = [await apps.serve(), await desk.serve()]
    apps_url, desk_url = (str(server.make_url("/hook")) for server in servers)
    env = {
        **pipeline.env(),  # no ELECTION_MODE: a worker is a rehearsal's unless told otherwise
        "ELECTION_WEBHOOK_URLS": orjson.dumps([apps_url]).decode(),
        "ELECTION_WEBHOOK_REHEARSAL_URLS": orjson.dumps([desk_url]).decode(),
        "ELECTION_WEBHOOK_SECRETS": orjson.dumps([secret]).decode(),
    }
    # The replay, as night.sh sends it: a rehearsal.
    feed = build_outgoing(DATA_DIR)[:OPENING]
    worker: WorkerProcess | None = None
    try:
        worker = await run_worker(pipeline, night, env, feed)
        expected = await asyncio.to_thread(pipeline.outbox_alert_ids)
        end = await last_queued(pipeline)
        deadline = time.monotonic() + 60
        # Until the desk has every alert and the apps' subscriber has settled every entry.
        while time.monotonic() < deadline:
            cursor, withheld, _, _ = await accounting(pipeline, apps_url)
            if desk.verified == expected and cursor >= end and withheld == set(expected):
                break
            await asyncio.sleep(0.5)
        # Settled is final: nothing is POSTed after its cursor moved. A moment more to show it.
        await asyncio.sleep(2)
    finally:
        if worker is not None:
            await asyncio.to_thread(worker.stop)
        for server in servers:
            await server.close()
    assert worker is not None
    assert len(expected) >= 3, f"too few alerts in the opening of the night: {expected}"
    assert desk.verified == expected, worker.tail()
    assert {body["rehearsal"] for body in desk.bodies} == {True}
    # Never sent to the subscriber that did not ask, and not lost from its accounting either.
    assert apps.verified == [] and apps.refused == 0
    cursor, withheld, delivered, dead = await accounting(pipeline, apps_url)
    assert withheld == set(expected) and delivered == set() and dead == 0
    assert cursor == end
    _, desk_withheld, desk_delivered, _ = await accounting(pipeline, desk_url)
    assert desk_withheld == set() and desk_delivered == set(expected)
    assert "1 of them taking rehearsals" in worker.log()
