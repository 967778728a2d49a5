"""The tally store on a real Redis: its cjson, script cache, pipelines and concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

import scripts.reset_election
from schemas.declaration import DeclarationKind
from scripts.reset_election import main as reset_main
from streams.settings import Settings
from streams.store.keys import OFFSETS, SEAT
from streams.store.tally_store import TallyStore, TallyStoreError
from tests.store_helpers import apply_batch
from tests.unit.tally_fixtures import night, revised
from tests.unit.test_tally_store import CHECKS, ELECTION, Check, pending


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_tally_store_on_real_redis(check: Check, redis_url: str, redis_prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await check(redis, redis_prefix)
    finally:
        await redis.aclose()


def test_reset_election_script(
    redis_url: str,
    redis_prefix: str,
    kafka_bootstrap: str,
    unique_topic: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each reset goes on the audit trail first: this test's own topic, not the broker's.
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_audit=unique_topic("audit"))
    monkeypatch.setattr(scripts.reset_election, "get_settings", lambda: settings)

    async def fill() -> None:
        redis = Redis.from_url(redis_url)
        try:
            store = TallyStore(redis, ELECTION, redis_prefix, night().register)
            await apply_batch(store, pending(night().declarations[:4]))
        finally:
            await redis.aclose()

    asyncio.run(fill())
    argv = ["--election", ELECTION, "--redis-url", redis_url, "--key-prefix", redis_prefix]
    assert reset_main(argv) == 0
    # Four seats, the seats set, totals, offsets, changes and counters.
    assert capsys.readouterr().out == f"removed 11 keys of {redis_prefix}election:{{{ELECTION}}}:\n"
    assert reset_main(argv) == 0
    assert capsys.readouterr().out.startswith("removed 0 keys")


async def test_a_step_failing_in_cjson_records_nothing(redis_url: str, redis_prefix: str) -> None:
    """Redis keeps a failed script's earlier writes, so decoding comes before any write.

    (fakeredis lets a cjson error escape to Python, so this one runs on Redis only.)
    """
    redis = Redis.from_url(redis_url)
    try:
        store = TallyStore(redis, ELECTION, redis_prefix, night().register)
        first = night().declarations[0]
        await apply_batch(store, pending([first]))
        seat_key = store.key(SEAT + first.constituency_id)
        good = await redis.hget(seat_key, "contribution")  # type: ignore[misc]
        await redis.hset(seat_key, "contribution", "not json")  # type: ignore[misc]
        before = await store.totals()
        correction = revised(first, 2, DeclarationKind.CORRECTION)
        with pytest.raises(TallyStoreError):
            await apply_batch(store, pending([correction], 1))
        assert await store.totals() == before
        assert await redis.hget(store.key(OFFSETS), "declarations:0") == b"0"  # type: ignore[misc]
        await redis.hset(seat_key, "contribution", good)  # type: ignore[misc]
        [outcome] = await apply_batch(store, pending([correction], 1))
        assert (outcome.outcome, outcome.sequence) == ("applied", 2)
    finally:
        await redis.aclose()
