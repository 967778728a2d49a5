"""The one retry schedule: doubling up to a cap, each wait a random half to all of it."""

from __future__ import annotations

import pytest

from streams.rules.backoff import backoff_delay, backoff_schedule


def test_the_backoff_doubles_up_to_the_cap() -> None:
    assert backoff_schedule(6, 0.5, 4.0) == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_schedule(1, 0.5, 4.0) == []
    assert backoff_delay(0, 0.5, 4.0, jitter=0.7) == 0.0
    assert backoff_delay(10_000, 0.5, 30.0, jitter=1.0) == 30.0  # no overflow after an outage


@pytest.mark.parametrize("failures", [1, 3, 4, 9])
def test_each_wait_is_a_random_half_to_all_of_its_ceiling(failures: int) -> None:
    ceiling = backoff_schedule(10, 0.5, 4.0)[failures - 1]
    assert backoff_delay(failures, 0.5, 4.0, jitter=0.0) == ceiling / 2
    assert backoff_delay(failures, 0.5, 4.0, jitter=0.5) == ceiling * 3 / 4
    waits = {backoff_delay(failures, 0.5, 4.0, jitter=n / 100) for n in range(100)}
    assert len(waits) == 100 and all(ceiling / 2 <= w < ceiling for w in waits)
