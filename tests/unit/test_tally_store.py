"""The tally store's rules, on fakeredis (which runs the same Lua)."""

from __future__ import annotations

import fakeredis
import pytest

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
async def test_tally_store(check: store_checks.Check, night: Night) -> None:
    await check(fakeredis.FakeAsyncRedis(), "unit:", night)
