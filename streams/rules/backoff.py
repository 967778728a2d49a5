"""How long to wait before trying again: the one retry schedule, for webhooks and Redis alike."""

from __future__ import annotations


def backoff_delay(failures: int, base_s: float, cap_s: float, jitter: float) -> float:
    """Wait before the next attempt after `failures` failed ones. Its ceiling is base, 2×base,
    4×base ... ≤ cap; `jitter` in [0, 1] places it from half the ceiling (0) to all of it (1)."""
    if failures < 1:
        return 0.0
    # The exponent is bounded so a long outage cannot overflow the float.
    ceiling = min(base_s * 2 ** min(failures - 1, 62), cap_s)
    # Equal jitter: clients that failed together (subscribers behind one host, workers of one
    # Redis) are not all retried in the same instant, and whatever is in trouble still gets
    # at least half the ceiling to recover.
    return float(ceiling / 2 * (1 + jitter))


def backoff_schedule(max_attempts: int, base_s: float, cap_s: float) -> list[float]:
    """The ceiling of every wait between `max_attempts` attempts (one fewer than them)."""
    return [backoff_delay(n, base_s, cap_s, jitter=1.0) for n in range(1, max_attempts)]
