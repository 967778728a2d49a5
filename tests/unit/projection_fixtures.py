"""The 2024 register's seats declared with a made-up swing, for the projection's tests."""

from __future__ import annotations

from pathlib import Path

from streams.rules.projection import Baseline, DeclaredSeat
from streams.rules.reference import load_register

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"


def ge2024_seats(count: int) -> tuple[Baseline, list[DeclaredSeat]]:
    """The baseline, and the first `count` seats by ONS id with every third non-Labour one
    swinging eight points from its notional winner to Labour."""
    register = load_register(DATA_DIR)
    baseline = Baseline.of(register)
    refs = sorted(register.constituencies.values(), key=lambda ref: ref.ons_id)
    seats = []
    for i, ref in enumerate(refs[:count]):
        shares = dict(ref.notional_2019_shares)
        if i % 3 == 0 and ref.notional_2019_winner != "Lab":
            shares[ref.notional_2019_winner] -= 0.08
            shares["Lab"] = shares.get("Lab", 0.0) + 0.08
        seats.append(DeclaredSeat(ref.ons_id, max(shares, key=lambda p: shares[p]), shares))
    return baseline, seats
