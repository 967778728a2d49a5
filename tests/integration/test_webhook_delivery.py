"""A real worker pushes the night's alerts to real receivers, signed while a secret rotates."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook, WebhookVerificationError

from scripts.night_builder import Night
from scripts.replay import build_outgoing
from tests.integration.helpers import WorkerProcess
from tests.integration.pipeline import DATA_DIR, Pipeline
from tests.unit.test_webhook_signing import new_secret

# The exit poll and the first declarations: a handful of alerts of the opening minutes.
OPENING = 8


class Subscriber:
    """A newsroom's receiver that knows one secret and refuses what it cannot verify."""

    def __init__(self, secret: str) -> None:
        self.hook = Webhook(secret)
        self.verified: list[str] = []
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
        return web.Response(status=204)

    async def serve(self) -> TestServer:
        application = web.Application()
        application.router.add_post("/hook", self.receive)
        server = TestServer(application, host="127.0.0.1")
        await server.start_server()
        return server


async def test_subscribers_on_the_old_and_the_new_secret_both_verify_every_alert(
    pipeline: Pipeline, night: Night
) -> None:
    old, new = new_secret(), new_secret()
    on_old, on_new = Subscriber(old), Subscriber(new)
    servers = [await on_old.serve(), await on_new.serve()]
    env = {
        **pipeline.env(),
        "ELECTION_WEBHOOK_URLS": orjson.dumps([str(s.make_url("/hook")) for s in servers]).decode(),
        # Mid-rotation: every POST carries a signature by each.
        "ELECTION_WEBHOOK_SECRETS": orjson.dumps([old, new]).decode(),
    }
    feed = build_outgoing(DATA_DIR)[:OPENING]
    worker = WorkerProcess("streams.worker:app", env, name="webhooks")
    try:
        # The worker and the feed block; the receivers answer on this loop meanwhile.
        await asyncio.to_thread(worker.start)
        await asyncio.to_thread(worker.wait_for_log, "Ready", 120)
        await asyncio.to_thread(pipeline.send, feed)
        # Every seat of the feed tallied and its outputs queued: the alerts to expect are in.
        seats = sum(message.seat_declared for message in feed)
        await asyncio.to_thread(pipeline.wait_until_published, night.register, seats, 120)
        expected = await asyncio.to_thread(pipeline.outbox_alert_ids)
        deadline = time.monotonic() + 60
        while not on_old.verified == on_new.verified == expected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(worker.stop)
        for server in servers:
            await server.close()
    assert len(expected) >= 3, f"too few alerts in the opening of the night: {expected}"
    assert on_old.verified == expected, worker.tail()
    assert on_new.verified == expected, worker.tail()
    assert on_old.refused == on_new.refused == 0
    assert (
        "unsigned" not in worker.log()
        and "ELECTION_WEBHOOK_SECRET is deprecated" not in worker.log()
    )
