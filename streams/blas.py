"""How many threads numpy's matrix products may take in our processes: one."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> None:
    """Keep numpy's BLAS (OpenBLAS in numpy's wheels) to the calling thread from now on.

    The projection's matrix products are small (40 resamples by the declared seats): a
    second BLAS thread made a fresh range no faster, and spun between products, so a range
    took twice its CPU on the two cores the worker, Kafka and Redis share
    (docs/benchmarks.md, 27 November, evening).
    """
    threadpool_limits(limits=1, user_api="blas")
