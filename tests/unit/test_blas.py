"""numpy's BLAS held to one thread in our processes (streams.blas)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy  # noqa: F401  (loads the BLAS whose threads are limited)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from streams.blas import one_blas_thread


@pytest.fixture
def blas_threads() -> Iterator[None]:
    before = threadpool_limits(limits=2, user_api="blas")
    yield
    before.restore_original_limits()


def test_numpy_matrix_products_take_one_thread_after_it(blas_threads: None) -> None:
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy loaded no BLAS that threadpoolctl can see"
    assert any(pool["num_threads"] == 2 for pool in blas)
    one_blas_thread()
    assert [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"] == [
        1
    ] * len(blas)
