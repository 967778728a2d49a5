"""The tally store on a real Redis: its cjson, script cache, pipelines and concurrency."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from scripts.reset_election import main as reset_main
from streams.tally_store import TallyStore
from tests.unit.tally_fixtures import night
from tests.unit.test_tally_store import CHECKS, ELECTION, Check, pending


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_tally_store_on_real_redis(check: Check, redis_url: str, redis_prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await check(redis, redis_prefix)
    finally:
        await redis.aclose()


def test_reset_election_script(
    redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> None:
        redis = Redis.from_url(redis_url)
        try:
            store = TallyStore(redis, ELECTION, redis_prefix, night().register)
            await store.apply_batch(pending(night().declarations[:4]))
        finally:
            await redis.aclose()

    asyncio.run(fill())
    argv = ["--election", ELECTION, "--redis-url", redis_url, "--key-prefix", redis_prefix]
    assert reset_main(argv) == 0
    # Four seats, the seats set, totals, offsets, changes and counters.
    assert capsys.readouterr().out == f"removed 9 keys of {redis_prefix}election:{ELECTION}:\n"
    assert reset_main(argv) == 0
    assert capsys.readouterr().out.startswith("removed 0 keys")
