"""Webhook delivery: answer handling, signing, retries, dead letters, dedupe, rehearsals."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiohttp
import fakeredis
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from standardwebhooks import Webhook

from streams.pipeline.app import create_app
from streams.pipeline.webhooks import (
    Action,
    Decision,
    Dispatcher,
    Policy,
    Subscriber,
    alert_request,
    decide,
    subscriber_id,
)
from streams.rules.webhook_signing import WebhookSecretError, secret_key
from streams.settings import Settings
from streams.store.keys import SubscriberKeys, election_namespace
from streams.store.outbox import Outbox, Output, QueuedOutput
from tests.integration.helpers import free_port
from tests.store_helpers import announce
from tests.unit.test_webhook_signing import LEGACY_VECTOR, new_secret

NS = election_namespace("test:", "parl.2024-07-04")
FAST = Policy(max_attempts=3, backoff_s=0.001, backoff_max_s=0.004, timeout_s=2.0)


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
    assert keys.withheld == f"{NS}webhooks:{sha}:withheld"


def alert(alert_id: str, rehearsal: bool | None = False) -> Output:
    """A queued alert of the live night, or of a rehearsal; None: one that does not say."""
    fields = {"alert_id": alert_id, "headline": f"alert {alert_id}", "sequence": None}
    if rehearsal is not None:
        fields["rehearsal"] = rehearsal
    value = orjson.dumps(fields)
    return Output(output_id=f"alert:{alert_id}", topic="alerts", key=alert_id, value=value)


def result(ons_id: str) -> Output:
    return Output(output_id=f"result:{ons_id}:1", topic="results", key=ons_id, value=b"{}")


def test_the_request_names_the_alert_and_carries_its_outbox_position() -> None:
    item = QueuedOutput(7, alert("a1"))
    alert_id, body, headers = alert_request(item, orjson.loads(item.output.value))
    assert alert_id == "a1"
    assert orjson.loads(body) == {
        "alert_id": "a1",
        "headline": "alert a1",
        "sequence": 7,
        "rehearsal": False,
    }
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Alert-Id"] == headers["Idempotency-Key"] == "a1"


SIGNED_AT = 1720137600  # 2024-07-05 01:00 BST
SIGNED_BODY = b'{"alert_id":"a1","sequence":7}'


def test_the_policy_reads_the_secrets_in_order_and_the_deprecated_one_apart() -> None:
    old, new = new_secret(), new_secret()
    assert Policy.from_settings(Settings()).keys == ()
    assert Policy.from_settings(Settings()).legacy_secret is None
    rotating = Settings(webhook_secrets=[SecretStr(old), SecretStr(new)])
    assert Policy.from_settings(rotating).keys == (secret_key(old), secret_key(new))
    legacy = Policy.from_settings(Settings(webhook_secret=SecretStr("k")))
    assert legacy.legacy_secret == "k" and legacy.keys == ()
    # An empty ELECTION_WEBHOOK_SECRET= meant unsigned before, and still does.
    assert Policy.from_settings(Settings(webhook_secret=SecretStr(""))).legacy_secret is None


def test_a_malformed_secret_stops_the_policy_naming_its_place_not_its_text() -> None:
    settings = Settings(webhook_secrets=[SecretStr(new_secret()), SecretStr("whsec_c2hvcnQ=")])
    with pytest.raises(
        WebhookSecretError, match=r"ELECTION_WEBHOOK_SECRETS\[1\] holds a 5-byte key"
    ) as e:
        Policy.from_settings(settings)
    assert "c2hvcnQ" not in str(e.value)
    assert "whsec_" not in repr(settings) + settings.model_dump_json()
    # The worker builds the policy with its app: a bad secret stops it at start.
    with pytest.raises(WebhookSecretError):
        create_app(settings)


def test_each_attempt_carries_the_alert_s_headers_then_its_signatures() -> None:
    secret = new_secret()
    policy = Policy(1, 0, 0, 1, keys=(secret_key(secret),), legacy_secret="whsec-test")
    own = {"X-Alert-Id": "a1", "Idempotency-Key": "a1"}
    headers = policy.signed("a1", SIGNED_BODY, own, now=SIGNED_AT + 0.9)
    assert headers["webhook-id"] == "a1" and headers["webhook-timestamp"] == str(SIGNED_AT)
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["X-Alert-Id"] == headers["Idempotency-Key"] == "a1"
    # The deprecated header, as before, at the same instant.
    assert headers["X-Signature-Timestamp"] == str(SIGNED_AT)
    assert headers["X-Signature-256"] == "sha256=" + LEGACY_VECTOR
    unsigned = Policy(1, 0, 0, 1).signed("a1", SIGNED_BODY, own, now=SIGNED_AT)
    assert unsigned == {**own, "webhook-id": "a1", "webhook-timestamp": str(SIGNED_AT)}


async def test_every_attempt_reaches_the_subscriber_signed_and_verifiable(
    session: aiohttp.ClientSession,
) -> None:
    old, new = new_secret(), new_secret()
    seen: list[tuple[str, str]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        # One subscriber still on the old secret, one already on the new: both verify.
        for secret in (old, new):
            assert Webhook(secret).verify(body, headers)["alert_id"] == "signed"
        seen.append((headers["webhook-id"], headers["webhook-timestamp"]))
        # The first attempt fails, so the retry is signed afresh too.
        return web.Response(status=503 if len(seen) == 1 else 204)

    application = web.Application()
    application.router.add_post("/hook", hook)
    server = TestServer(application)
    await server.start_server()
    redis = fakeredis.FakeAsyncRedis()
    await announce(Outbox(redis, NS), 1, [alert("signed")])
    keys = (secret_key(old), secret_key(new))
    policy = Policy(max_attempts=3, backoff_s=0.001, backoff_max_s=0.004, timeout_s=2.0, keys=keys)
    subscriber = Subscriber(str(server.make_url("/hook")), redis, NS, policy, session)
    try:
        assert await subscriber.step(block_ms=10) == 1
    finally:
        await server.close()
    # The same id on the retry, so a subscriber that had the first one drops the second.
    assert [alert_id for alert_id, _ in seen] == ["signed", "signed"]
    assert all(abs(int(stamp) - time.time()) < 60 for _, stamp in seen)


class Receiver:
    """A webhook receiver answering each POST with the next status its script gives."""

    def __init__(self, status_of: Callable[[str, int], int]) -> None:
        self.status_of = status_of
        self.attempts: Counter[str] = Counter()
        self.acknowledged: list[str] = []
        self.bodies: list[dict[str, object]] = []

    async def hook(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        assert request.headers["X-Alert-Id"] == request.headers["webhook-id"] == key
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
        await subscriber._move(9)
        await subscriber._move(4)
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


async def rehearsal_night(redis: fakeredis.FakeAsyncRedis) -> Outbox:
    """A rehearsal's alerts, one that does not say what it is, and a live one among them."""
    outbox = Outbox(redis, NS)
    await announce(outbox, 1, [result("E1"), alert("r1", rehearsal=True)])
    await announce(outbox, 2, [alert("unsaid", rehearsal=None), alert("live")])
    await announce(outbox, 3, [alert("r2", rehearsal=True)])
    return outbox


async def test_a_rehearsal_is_never_posted_to_a_subscriber_that_did_not_ask_and_is_withheld(
    session: aiohttp.ClientSession,
) -> None:
    receiver = Receiver(lambda key, attempt: 204)
    server = await serve(receiver)
    redis = fakeredis.FakeAsyncRedis()
    await rehearsal_night(redis)
    subscriber = Subscriber(str(server.make_url("/hook")), redis, NS, FAST, session)
    try:
        # Every alert is settled, the withheld ones too: none is waited on or retried.
        assert await subscriber.step(block_ms=10) == 4
        assert await subscriber.step(block_ms=10) == 0
    finally:
        await server.close()
    # Only the live one; an alert that does not say it is live is not taken for live.
    assert receiver.acknowledged == ["live"]
    assert receiver.bodies[0]["rehearsal"] is False
    assert await redis.smembers(subscriber.keys.withheld) == {b"r1", b"unsaid", b"r2"}
    assert await redis.smembers(subscriber.keys.delivered) == {b"live"}
    assert await subscriber.dead_letters() == []
    assert await subscriber.cursor() == 5


async def test_a_subscriber_that_asked_for_rehearsals_gets_every_alert(
    session: aiohttp.ClientSession,
) -> None:
    receiver = Receiver(lambda key, attempt: 204)
    server = await serve(receiver)
    redis = fakeredis.FakeAsyncRedis()
    await rehearsal_night(redis)
    url = str(server.make_url("/hook"))
    subscriber = Subscriber(url, redis, NS, FAST, session, takes_rehearsals=True)
    try:
        assert await subscriber.step(block_ms=10) == 4
    finally:
        await server.close()
    assert receiver.acknowledged == ["r1", "unsaid", "live", "r2"]
    assert [body.get("rehearsal") for body in receiver.bodies] == [True, None, False, True]
    assert await redis.smembers(subscriber.keys.withheld) == set()


async def test_rehearsal_subscribers_are_subscribers_too(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, bool]] = []

    async def wait_forever(self: Subscriber) -> None:
        made.append((self.url, self.takes_rehearsals))
        await asyncio.Event().wait()

    monkeypatch.setattr(Subscriber, "run", wait_forever)
    apps, desk = "http://127.0.0.1:1/apps", "http://127.0.0.1:1/desk"
    # The desk listed twice (also among the plain URLs) is one subscriber, taking rehearsals.
    dispatcher = Dispatcher([apps, desk], fakeredis.FakeAsyncRedis(), NS, FAST, [desk])
    await dispatcher.tick()
    await asyncio.sleep(0)
    assert sorted(made) == [(apps, False), (desk, True)]
    await dispatcher.stop()
