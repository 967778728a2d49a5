"""The tally store's rules on a real Redis: atomic Lua, batches, redelivery, two writers."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from scripts.night_builder import Night, build_night
from tests import store_checks
from tests.unit.ge2024 import DATA_DIR


@pytest.fixture(scope="module")
def night() -> Night:
    return build_night(DATA_DIR)


@pytest.mark.parametrize(
    "check",
    [
        store_checks.check_whole_night,
        store_checks.check_revisions,
        store_checks.check_two_stores_share_one_election,
        store_checks.check_elections_side_by_side,
    ],
)
async def test_tally_store_on_real_redis(
    check: store_checks.Check, night: Night, redis_url: str, redis_prefix: str
) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await check(redis, redis_prefix, night)
    finally:
        await redis.aclose()
