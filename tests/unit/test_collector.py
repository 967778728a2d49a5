"""The collector's settings for our long-running processes (streams.collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.collector import settle_the_heap
from streams.settings import Settings


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_the_youngest_are_collected_every_threshold_allocations_and_the_heap_frozen(
    collector: None,
) -> None:
    _, middle, oldest = gc.get_threshold()
    held = [object() for _ in range(10)]
    settle_the_heap(12_345)
    assert gc.get_threshold() == (12_345, middle, oldest)
    assert gc.get_freeze_count() >= len(held)


def test_zero_keeps_pythons_own_threshold(collector: None) -> None:
    before = gc.get_threshold()
    settle_the_heap(0)
    assert gc.get_threshold() == before


def test_the_default_collects_less_often_than_python() -> None:
    assert Settings().gc_young_threshold > gc.get_threshold()[0]
