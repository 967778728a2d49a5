"""How our long-running processes set Python's garbage collector once they are loaded."""

from __future__ import annotations

import gc


def settle_the_heap(young_threshold: int) -> None:
    """Exempt everything alive from garbage collection, once the reference data is loaded,
    and collect the youngest objects every `young_threshold` allocations (0: Python's 700).

    A worker holds hundreds of thousands of long-lived objects (300,000 with the register of
    a 10,000-seat election), and a full collection walks them all: a pause of about 100 ms in
    the middle of the night's traffic. Frozen, they are never walked again. Each pass over the
    youngest objects also brings the next full pass nearer; at Python's 700 allocations a
    rebuild spent more time collecting than validating (docs/benchmarks.md, 27 November).
    The objects of a batch are freed by their reference counts, not by the collector, so
    fewer passes cost nothing but the cycles they would have found a little sooner.
    """
    if young_threshold > 0:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, oldest)
    gc.collect()
    gc.freeze()
