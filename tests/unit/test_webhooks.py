"""Webhook delivery: backoff schedule, answer handling, retries, dead letters and dedupe."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiohttp
import fakeredis
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from streams.pipeline.webhooks import (
    Action,
    Decision,
    Dispatcher,
    Policy,
    Subscriber,
    alert_request,
    backoff_delay,
    backoff_schedule,
    decide,
    signed_headers,
    subscriber_id,
    verify_signature,
)
from streams.settings import Settings
from streams.store.keys import SubscriberKeys, election_namespace
from streams.store.outbox import Outbox, Output, QueuedOutput
from tests.integration.helpers import free_port
from tests.store_helpers import announce

NS = election_namespace("test:", "parl.2024-07-04")
FAST = Policy(max_attempts=3, backoff_s=0.001, backoff_max_s=0.004, timeout_s=2.0)


def test_the_backoff_doubles_up_to_the_cap() -> None:
    assert backoff_schedule(6, 0.5, 4.0) == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_schedule(1, 0.5, 4.0) == []
    assert backoff_delay(0, 0.5, 4.0) == 0.0
    assert backoff_delay(10_000, 0.5, 30.0) == 30.0  # no overflow after a long outage


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(status: int) -> None:
    assert decide(status, None, 1, 5) == Decision(Action.DELIVERED)


@pytest.mark.parametrize("status", [301, 400, 404, 429, 500, 503])
def test_anything_else_is_retried_then_dead(status: int) -> None:
    assert decide(status, None, 1, 3) == Decision(Action.RETRY, f"HTTP {status}")
    assert decide(status, None, 3, 3) == Decision(Action.DEAD, f"HTTP {status} after 3 attempts")


def test_no_answer_is_retried_with_the_error_as_reason() -> None:
    decision = decide(None, "ClientConnectorError: refused", 1, 2)
    assert decision == Decision(Action.RETRY, "no answer: ClientConnectorError: refused")
    assert decide(None, None, 2, 2).action is Action.DEAD


def test_keys_live_in_the_election_namespace_under_a_hash_of_the_url() -> None:
    sha = subscriber_id("http://example.org/hook?token=secret")
    keys = SubscriberKeys.of(NS, sha)
    assert len(sha) == 16 and "secret" not in keys.cursor
    assert keys.cursor == f"{NS}webhooks:{sha}:cursor"
    assert keys.delivered == f"{NS}webhooks:{sha}:delivered"
    assert keys.dead == f"{NS}webhooks:{sha}:dead"


def alert(alert_id: str) -> Output:
    value = orjson.dumps({"alert_id": alert_id, "headline": f"alert {alert_id}", "sequence": None})
    return Output(output_id=f"alert:{alert_id}", topic="alerts", key=alert_id, value=value)


def result(ons_id: str) -> Output:
    return Output(output_id=f"result:{ons_id}:1", topic="results", key=ons_id, value=b"{}")


def test_the_request_names_the_alert_and_carries_its_outbox_position() -> None:
    alert_id, body, headers = alert_request(QueuedOutput(7, alert("a1")))
    assert alert_id == "a1"
    assert orjson.loads(body) == {"alert_id": "a1", "headline": "alert a1", "sequence": 7}
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Alert-Id"] == headers["Idempotency-Key"] == "a1"


SECRET = "whsec-test"
SIGNED_AT = 1720137600  # 2024-07-05 01:00 BST
SIGNED_BODY = b'{"alert_id":"a1","sequence":7}'
# `printf '1720137600.{"alert_id":"a1","sequence":7}' | openssl dgst -sha256 -hmac whsec-test`
OPENSSL_VECTOR = "59c446994cbad013f602e2627791a4c2547002170a8f75982b7d3126bd393683"


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    headers = signed_headers({"X-Alert-Id": "a1"}, SIGNED_BODY, SECRET, now=SIGNED_AT + 0.9)
    assert headers["X-Signature-Timestamp"] == str(SIGNED_AT)
    by_hand = hmac.new(SECRET.encode(), b"1720137600." + SIGNED_BODY, hashlib.sha256)
    assert by_hand.hexdigest() == OPENSSL_VECTOR
    assert headers["X-Signature-256"] == "sha256=" + OPENSSL_VECTOR
    assert headers["X-Alert-Id"] == "a1"


def test_a_subscriber_accepts_only_the_signed_body_with_the_secret_in_time() -> None:
    sig = "sha256=" + OPENSSL_VECTOR
    ts = str(SIGNED_AT)
    assert verify_signature(SECRET, ts, SIGNED_BODY, sig, now=SIGNED_AT + 299)
    assert not verify_signature(SECRET, ts, SIGNED_BODY.replace(b"a1", b"a2"), sig, now=SIGNED_AT)
    assert not verify_signature("other-secret", ts, SIGNED_BODY, sig, now=SIGNED_AT)
    assert not verify_signature(SECRET, str(SIGNED_AT + 1), SIGNED_BODY, sig, now=SIGNED_AT)
    assert not verify_signature(SECRET, ts, SIGNED_BODY, OPENSSL_VECTOR, now=SIGNED_AT)
    # A request replayed later, or stamped far ahead, is refused even though it is genuine.
    assert not verify_signature(SECRET, ts, SIGNED_BODY, sig, now=SIGNED_AT + 301)
    assert not verify_signature(SECRET, ts, SIGNED_BODY, sig, now=SIGNED_AT - 301)
    assert verify_signature(SECRET, ts, SIGNED_BODY, sig, tolerance_s=3600, now=SIGNED_AT + 3000)
    for bad in ("", "-1", "1720137600.0", "1e9", "١٧٢٠"):
        assert not verify_signature(SECRET, bad, SIGNED_BODY, sig, now=SIGNED_AT)


def test_without_a_secret_nothing_is_signed() -> None:
    headers = {"X-Alert-Id": "a1"}
    assert signed_headers(headers, SIGNED_BODY, None) == headers
    assert signed_headers(headers, SIGNED_BODY, "") == headers
    assert Policy.from_settings(Settings()).secret is None
    assert Policy.from_settings(Settings(webhook_secret=SecretStr("k"))).secret == "k"


async def test_every_attempt_reaches_the_subscriber_signed_and_verifiable(
    session: aiohttp.ClientSession,
) -> None:
    verified: list[bool] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        verified.append(
            verify_signature(
                SECRET,
                request.headers["X-Signature-Timestamp"],
                body,
                request.headers["X-Signature-256"],
            )
        )
        # The first attempt fails, so the retry is signed afresh too.
        return web.Response(status=503 if len(verified) == 1 else 204)

    application = web.Application()
    application.router.add_post("/hook", hook)
    server = TestServer(application)
    await server.start_server()
    redis = fakeredis.FakeAsyncRedis()
    await announce(Outbox(redis, NS), 1, [alert("signed")])
    policy = Policy(
        max_attempts=3, backoff_s=0.001, backoff_max_s=0.004, timeout_s=2.0, secret=SECRET
    )
    subscriber = Subscriber(str(server.make_url("/hook")), redis, NS, policy, session)
    try:
        assert await subscriber.step(block_ms=10) == 1
    finally:
        await server.close()
    assert verified == [True, True]


class Receiver:
    """A webhook receiver answering each POST with the next status its script gives."""

    def __init__(self, status_of: Callable[[str, int], int]) -> None:
        self.status_of = status_of
        self.attempts: Counter[str] = Counter()
        self.acknowledged: list[str] = []
        self.bodies: list[dict[str, object]] = []

    async def hook(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        assert request.headers["X-Alert-Id"] == key
        assert request.content_type == "application/json"
        self.attempts[key] += 1
        status = self.status_of(key, self.attempts[key])
        if status < 300:
            self.acknowledged.append(key)
            self.bodies.append(await request.json())
        return web.Response(status=status)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def serve(receiver: Receiver) -> TestServer:
    application = web.Application()
    application.router.add_post("/hook", receiver.hook)
    server = TestServer(application)
    await server.start_server()
    return server


async def queued(redis: fakeredis.FakeAsyncRedis) -> Outbox:
    outbox = Outbox(redis, NS)
    await announce(outbox, 1, [result("E1"), alert("a"), alert("b")])
    await announce(outbox, 2, [result("E2"), alert("c")])
    return outbox


async def test_every_alert_is_delivered_in_order_despite_first_failures(
    session: aiohttp.ClientSession,
) -> None:
    receiver = Receiver(lambda key, attempt: 500 if key == "b" and attempt == 1 else 204)
    server = await serve(receiver)
    redis = fakeredis.FakeAsyncRedis()
    await queued(redis)
    subscriber = Subscriber(str(server.make_url("/hook")), redis, NS, FAST, session)
    try:
        assert await subscriber.step(block_ms=10) == 3
    finally:
        await server.close()
    assert receiver.acknowledged == ["a", "b", "c"]
    assert receiver.attempts == {"a": 1, "b": 2, "c": 1}
    assert [body["sequence"] for body in receiver.bodies] == [2, 3, 5]
    assert await subscriber.cursor() == 5
    assert await redis.smembers(subscriber.keys.delivered) == {b"a", b"b", b"c"}
    assert await subscriber.dead_letters() == []


async def test_an_alert_failing_every_attempt_is_dead_lettered_and_the_cursor_moves_on(
    session: aiohttp.ClientSession,
) -> None:
    receiver = Receiver(lambda key, attempt: 503 if key == "a" else 200)
    server = await serve(receiver)
    redis = fakeredis.FakeAsyncRedis()
    await queued(redis)
    subscriber = Subscriber(str(server.make_url("/hook")), redis, NS, FAST, session)
    try:
        await subscriber.step(block_ms=10)
    finally:
        await server.close()
    assert receiver.attempts["a"] == FAST.max_attempts
    assert receiver.acknowledged == ["b", "c"]
    [dead] = await subscriber.dead_letters()
    assert dead["alert_id"] == "a" and dead["sequence"] == 2
    assert dead["reason"] == "HTTP 503 after 3 attempts"
    assert dead["alert"]["headline"] == "alert a"
    assert await subscriber.cursor() == 5


async def test_a_subscriber_that_does_not_answer_dead_letters_with_the_error(
    session: aiohttp.ClientSession,
) -> None:
    redis = fakeredis.FakeAsyncRedis()
    await queued(redis)
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    subscriber = Subscriber(url, redis, NS, FAST, session)
    await subscriber.step(block_ms=10)
    dead = await subscriber.dead_letters()
    assert [d["alert_id"] for d in dead] == ["a", "b", "c"]
    assert all(d["reason"].startswith("no answer: ") for d in dead)


async def test_an_alert_acknowledged_before_a_crash_is_not_sent_again(
    session: aiohttp.ClientSession,
) -> None:
    receiver = Receiver(lambda key, attempt: 200)
    server = await serve(receiver)
    redis = fakeredis.FakeAsyncRedis()
    await queued(redis)
    url = str(server.make_url("/hook"))
    subscriber = Subscriber(url, redis, NS, FAST, session)
    # "a" was acknowledged, then the worker died before its cursor moved.
    await redis.sadd(subscriber.keys.delivered, "a")
    try:
        await subscriber.step(block_ms=10)
        await subscriber.step(block_ms=10)  # nothing new: nothing sent
    finally:
        await server.close()
    assert receiver.acknowledged == ["b", "c"]
    assert await subscriber.cursor() == 5


async def test_the_cursor_never_moves_back() -> None:
    redis = fakeredis.FakeAsyncRedis()
    async with aiohttp.ClientSession() as client:
        subscriber = Subscriber("http://127.0.0.1:1/hook", redis, NS, FAST, client)
        await subscriber._move(9, "", "")
        await subscriber._move(4, "", "")
    assert await subscriber.cursor() == 9


async def test_only_one_dispatcher_delivers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The lock is what is tested: delivery loops that just wait keep fakeredis's blocking
    # reads (which outlive their cancellation) out of the event loop's teardown.
    async def wait_forever(self: Subscriber) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(Subscriber, "run", wait_forever)
    redis = fakeredis.FakeAsyncRedis()
    first = Dispatcher(["http://127.0.0.1:1/hook"], redis, NS, FAST)
    second = Dispatcher(["http://127.0.0.1:1/hook"], redis, NS, FAST)
    assert await first.lease.acquire()
    assert not await second.lease.acquire()
    assert await first.lease.acquire()  # the holder renews
    await first.tick()
    await second.tick()
    assert len(first.tasks) == 1 and second.tasks == []
    await first.stop()  # releases the lock for the next one
    assert await second.lease.acquire()
    await second.stop()


async def test_a_dispatcher_without_subscribers_takes_no_lock() -> None:
    redis = fakeredis.FakeAsyncRedis()
    idle = Dispatcher([], redis, NS, FAST)
    await idle.tick()
    assert idle.tasks == [] and await redis.keys("*") == []
