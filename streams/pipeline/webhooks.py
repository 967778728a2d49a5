"""Webhook push of alerts: each subscriber gets every alert it takes, retried, dead-lettered."""

# Delivery guarantees, per subscriber:
# - Alerts go out one at a time in outbox order, so an amendment never overtakes its original.
# - After a 2xx the alert id joins the subscriber's delivered set and its cursor moves, in one
#   Lua step; an id in that set is never POSTed again, whatever happens to the cursor.
# - A crash (or a lost lock) after the receiver answered 2xx but before that step sends the
#   alert again: at-least-once in that window only. Every POST carries `webhook-id: <alert_id>`
#   (and `Idempotency-Key`, `X-Alert-Id`, the same), so a receiver that keeps the ids it saw
#   drops the repeat.
# - Non-2xx answers and connection errors are retried with capped exponential backoff and
#   jitter; after ELECTION_WEBHOOK_MAX_ATTEMPTS the alert goes to the `dead` list with the last
# reason
#   and the cursor moves on, so one poisoned alert cannot stall the night.
# - A rehearsal's alert goes only to subscribers in ELECTION_WEBHOOK_REHEARSAL_URLS. For every
#   other subscriber it is never POSTed: it joins that subscriber's `withheld` set and the
#   cursor moves, in the same Lua step, so it is accounted for and never retried.
# Only the holder of the webhooks lock delivers, so two workers never both send.
#
# Signatures follow Standard Webhooks (streams/rules/webhook_signing.py): one per secret of
# ELECTION_WEBHOOK_SECRETS, signed afresh per attempt so a retry is not refused as stale.
# Subscribers
# verify with the spec's libraries (`standardwebhooks` in Python, see the README).

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import hashlib
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from streams.connections import redis_from_settings
from streams.pipeline.context import ElectionApp
from streams.rules.backoff import backoff_delay
from streams.rules.rehearsal import withheld
from streams.rules.webhook_signing import (
    WebhookSecretError,
    legacy_signature_headers,
    secret_key,
    signature_headers,
)
from streams.settings import Settings
from streams.store.keys import WEBHOOK_SUBSCRIBERS, WEBHOOKS_LOCK, SubscriberKeys
from streams.store.lease import Lease
from streams.store.lua_scripts import lua_script
from streams.store.outbox import Outbox, QueuedOutput

log = logging.getLogger(__name__)

LOCK_TTL_MS = 10_000
BLOCK_MS = 1_000
READ_COUNT = 100
STOP_TIMEOUT_S = 2.0


# Pure parts: the retry schedule and what an answer means.


class Action(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    WITHHELD = "withheld"  # a rehearsal's alert, for a subscriber that takes none


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""


def decide(status: int | None, error: str | None, attempt: int, max_attempts: int) -> Decision:
    """What to do after attempt number `attempt` answered `status` (None: no answer, `error`)."""
    if status is not None and 200 <= status < 300:
        return Decision(Action.DELIVERED)
    reason = f"HTTP {status}" if status is not None else f"no answer: {error or 'unknown error'}"
    if attempt >= max_attempts:
        return Decision(Action.DEAD, f"{reason} after {attempt} attempts")
    return Decision(Action.RETRY, reason)


def subscriber_id(url: str) -> str:
    """Stable short id of a subscriber URL for its Redis keys (the URL itself may hold secrets)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def alert_request(item: QueuedOutput, alert: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """The alert id, JSON body and headers of one queued alert's POST (`alert`: its JSON)."""
    alert_id = str(alert.get("alert_id") or item.output.key)
    # The body carries its outbox position, as /api/alerts does, so receivers can order.
    body = orjson.dumps({**alert, "sequence": item.sequence})
    headers = {
        "Content-Type": "application/json",
        "X-Alert-Id": alert_id,
        "X-Alert-Sequence": str(item.sequence),
        "Idempotency-Key": alert_id,
    }
    return alert_id, body, headers


# Redis side: each outcome and its cursor move are one atomic step, and the cursor never moves
# back, so a stalled former dispatcher cannot make the current one send again.
_SETTLE = lua_script("webhook_settle")


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    timeout_s: float
    keys: tuple[bytes, ...] = ()  # one Standard Webhooks signature each, on every attempt
    legacy_secret: str | None = (
        None  # the deprecated ELECTION_WEBHOOK_SECRET's X-Signature-256 header
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy of the settings; a malformed secret is an error here, at start."""
        keys = []
        for index, secret in enumerate(settings.webhook_secrets):
            try:
                keys.append(secret_key(secret.get_secret_value()))
            except WebhookSecretError as error:
                raise WebhookSecretError(f"ELECTION_WEBHOOK_SECRETS[{index}] {error}") from None
        legacy = settings.webhook_secret
        return cls(
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s,
            keys=tuple(keys),
            # Empty meant unsigned before, and still does.
            legacy_secret=(legacy.get_secret_value() or None) if legacy is not None else None,
        )

    def signed(
        self, alert_id: str, body: bytes, headers: dict[str, str], now: float
    ) -> dict[str, str]:
        """The headers of one attempt, stamped `now`: the alert's own, then the signatures."""
        timestamp = int(now)
        signed = {**headers, **signature_headers(alert_id, timestamp, body, self.keys)}
        if self.legacy_secret is not None:
            signed.update(legacy_signature_headers(self.legacy_secret, timestamp, body))
        return signed


class Subscriber:
    """One webhook URL's delivery state in Redis and its delivery loop."""

    def __init__(
        self,
        url: str,
        redis: Redis,
        namespace: str,
        policy: Policy,
        session: aiohttp.ClientSession,
        takes_rehearsals: bool = False,
    ) -> None:
        self.url = url
        self.takes_rehearsals = takes_rehearsals
        self.redis = redis
        self.keys = SubscriberKeys.of(namespace, subscriber_id(url))
        self.outbox = Outbox(redis, namespace)
        self.policy = policy
        self.session = session
        self._settle = redis.register_script(_SETTLE.source)

    async def cursor(self) -> int:
        return int(await self.redis.get(self.keys.cursor) or 0)

    async def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(raw) for raw in await self.redis.lrange(self.keys.dead, 0, -1)]

    async def run(self) -> None:
        """Deliver forever from this subscriber's cursor; Redis trouble only pauses it."""
        while True:
            try:
                await self.step(block_ms=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery to subscriber %s failed", self.keys.cursor)
                await asyncio.sleep(1.0)

    async def step(self, block_ms: int) -> int:
        """Handle the next batch after the cursor; returns how many alerts were settled."""
        after = await self.cursor()
        items = await self.outbox.wait_for(after, block_ms=block_ms, count=READ_COUNT)
        return await self.handle(items)

    async def handle(self, items: Sequence[QueuedOutput]) -> int:
        settled = 0
        for item in items:
            if item.output.topic != "alerts":
                continue
            alert = orjson.loads(item.output.value)
            alert_id, body, headers = alert_request(item, alert)
            if await self.redis.sismember(self.keys.delivered, alert_id):
                # Acknowledged before a crash that came ahead of the cursor move.
                await self._move(item.sequence)
                continue
            if withheld(alert, self.takes_rehearsals):
                await self._move(item.sequence, alert_id, Action.WITHHELD)
                settled += 1
                continue
            decision = await self.deliver(alert_id, body, headers)
            if decision.action is Action.DELIVERED:
                await self._move(item.sequence, alert_id, Action.DELIVERED)
            else:
                log.warning("webhook dead-lettered %s: %s", alert_id, decision.reason)
                entry = orjson.dumps(
                    {
                        "alert_id": alert_id,
                        "sequence": item.sequence,
                        "subscriber": subscriber_id(self.url),
                        "reason": decision.reason,
                        "dead_at": dt.datetime.now(dt.UTC).isoformat(),
                        "alert": orjson.loads(body),
                    }
                )
                await self._move(item.sequence, alert_id, Action.DEAD, entry.decode())
            settled += 1
        if items:
            # Past the results and snapshots of the batch too, so they are not read again.
            await self._move(items[-1].sequence)
        return settled

    async def deliver(self, alert_id: str, body: bytes, headers: dict[str, str]) -> Decision:
        attempt = 0
        while True:
            attempt += 1
            signed = self.policy.signed(alert_id, body, headers, now=time.time())
            status, error = await self.post(body, signed)
            decision = decide(status, error, attempt, self.policy.max_attempts)
            if decision.action is not Action.RETRY:
                return decision
            await asyncio.sleep(
                backoff_delay(
                    attempt, self.policy.backoff_s, self.policy.backoff_max_s, random.random()
                )
            )

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        try:
            async with self.session.post(
                self.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
            ) as response:
                await response.read()  # drain, so the connection can be reused
                return response.status, None
        except (aiohttp.ClientError, TimeoutError) as error:
            return None, f"{type(error).__name__}: {error}"[:300]

    async def _move(
        self, sequence: int, alert_id: str = "", outcome: str = "", dead_entry: str = ""
    ) -> None:
        """Settle `alert_id` as `outcome` (none: only the cursor moves) and move the cursor."""
        await self._settle(
            keys=[self.keys.cursor, self.keys.delivered, self.keys.dead, self.keys.withheld],
            args=[sequence, alert_id, outcome, dead_entry],
        )


class Dispatcher:
    """Runs one delivery task per subscriber while this worker holds the webhooks lock."""

    def __init__(
        self,
        urls: Sequence[str],
        redis: Redis,
        namespace: str,
        policy: Policy,
        rehearsal_urls: Collection[str] = (),
    ) -> None:
        # The same URL twice is one subscriber; one among `rehearsal_urls` also takes rehearsals.
        self.urls = list(dict.fromkeys([*urls, *rehearsal_urls]))
        self.rehearsal_urls = frozenset(rehearsal_urls)
        self.redis = redis
        self.ns = namespace
        self.policy = policy
        self.lease = Lease(redis, namespace + WEBHOOKS_LOCK, LOCK_TTL_MS)
        self.tasks: list[asyncio.Task[None]] = []
        self.session: aiohttp.ClientSession | None = None

    async def tick(self) -> None:
        if not self.urls:
            return
        if not await self.lease.acquire():
            await self._stop_tasks()
            return
        if not self.tasks:
            self.session = self.session or aiohttp.ClientSession()
            for url in self.urls:
                # Operators find a subscriber's keys from its URL here.
                await self.redis.hset(self.ns + WEBHOOK_SUBSCRIBERS, subscriber_id(url), url)
                takes_rehearsals = url in self.rehearsal_urls
                subscriber = Subscriber(
                    url, self.redis, self.ns, self.policy, self.session, takes_rehearsals
                )
                self.tasks.append(asyncio.create_task(subscriber.run()))
            log.info(
                "webhook dispatcher delivering to %d subscriber(s), %d of them taking "
                "rehearsals; a rehearsal's alerts are withheld from the others "
                "(webhooks:<subscriber>:withheld)",
                len(self.urls),
                len(self.rehearsal_urls),
            )

    async def _stop_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            # Bounded: a connection stuck in a blocking read must not hold up shutdown.
            await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT_S)
        self.tasks = []

    async def stop(self) -> None:
        await self._stop_tasks()
        if self.session is not None:
            await self.session.close()
            self.session = None
        await self.lease.release()


def register(app: ElectionApp) -> None:
    """Deliver alerts to the webhook subscribers of the settings, from whichever worker leads."""
    settings = app.context.settings
    # Built now, so a malformed secret stops the worker at start, not at the first alert.
    policy = Policy.from_settings(settings)
    dispatcher: Dispatcher | None = None

    @app.timer(interval=1.0, name="streams.webhooks.dispatch_webhooks")
    async def dispatch_webhooks() -> None:
        nonlocal dispatcher
        if not settings.webhook_urls and not settings.webhook_rehearsal_urls:
            return  # no subscribers: nothing to lock, nothing to run
        if dispatcher is None:
            if policy.legacy_secret is not None:
                log.warning(
                    "ELECTION_WEBHOOK_SECRET is deprecated and goes next release: its "
                    "X-Signature-256 "
                    "header is still sent; move subscribers to ELECTION_WEBHOOK_SECRETS (Standard "
                    "Webhooks), then unset it"
                )
            elif not policy.keys:
                log.warning(
                    "ELECTION_WEBHOOK_SECRETS is empty: webhook POSTs go out unsigned, and "
                    "subscribers "
                    "cannot tell them from forgeries"
                )
            # Its own client: the delivery loops hold blocking XREADs.
            dispatcher = Dispatcher(
                settings.webhook_urls,
                redis_from_settings(settings),
                app.context.namespace,
                policy,
                settings.webhook_rehearsal_urls,
            )
        try:
            await dispatcher.tick()
        except Exception:
            # A Redis hiccup must not kill the timer; the next tick tries again.
            log.exception("webhook dispatcher tick failed")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_dispatcher(sender: Any, **kwargs: Any) -> None:
        if dispatcher is not None:
            await dispatcher.stop()
            await dispatcher.redis.aclose()
