"""The live projection on small hand-made elections whose right answer is worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from scripts.projection_error import seats_wrong, table
from streams.rules import projection as projection_rules
from streams.rules.projection import (
    Baseline,
    DeclaredSeat,
    Projecting,
    RunningProjection,
    project,
)
from streams.rules.reference import ConstituencyRef, Register, load_register
from tests.unit.projection_fixtures import DATA_DIR, ge2024_seats


def seat(ons_id: str, region: str, country: str, **shares: float) -> ConstituencyRef:
    winner = max(shares, key=lambda party: shares[party])
    return ConstituencyRef(
        ons_id=ons_id,
        name=ons_id,
        ballot_id=f"parl.{ons_id.lower()}.2024-07-04",
        region=region,
        country=country,
        candidates={},
        notional_2019_winner=winner,
        notional_2019_shares=shares,
    )


def election(*seats: ConstituencyRef) -> Baseline:
    register = Register(
        election_id="parl.2024-07-04",
        name="hand-made",
        polls_close=dt.datetime(2024, 7, 4, 21, tzinfo=dt.UTC),
        total_seats=len(seats),
        speaker_party="Spk",
        constituencies={s.ons_id: s for s in seats},
    )
    return Baseline.of(register)


def declared(ons_id: str, **shares: float) -> DeclaredSeat:
    return DeclaredSeat(ons_id, max(shares, key=lambda party: shares[party]), shares)


# Four English seats, Con ahead in three by 10, 20 and 30 points; one Labour seat.
FOUR = election(
    seat("A", "North", "England", Con=0.50, Lab=0.40),
    seat("B", "North", "England", Con=0.55, Lab=0.35),
    seat("C", "South", "England", Con=0.60, Lab=0.30),
    seat("D", "South", "England", Con=0.30, Lab=0.60),
)


def test_nothing_to_project_before_a_seat_has_figures() -> None:
    assert project(FOUR, []) is None
    rush = DeclaredSeat("D", "Lab", {})  # winner known, votes pending
    assert project(FOUR, [rush]) is None


def test_uniform_swing_moves_every_undeclared_seat_by_the_declared_change() -> None:
    # Seat A swings 12 points from Con to Lab (Con -12, Lab +12): Lab gains A outright.
    # Applied to B (Con 55-35 becomes 43-47) Lab gains it; C (60-30 becomes 48-42) stays Con.
    projection = project(FOUR, [declared("A", Con=0.38, Lab=0.52)], model="uniform")
    assert projection is not None
    assert projection.model == "uniform"
    assert (projection.seats_declared, projection.seats_with_figures) == (1, 1)
    assert {p.party: p.seats for p in projection.parties} == {"Lab": 3, "Con": 1}
    assert {p.party: p.declared for p in projection.parties} == {"Lab": 1, "Con": 0}
    assert projection.levels == {"national": 3}
    # One declared seat: every resample is that seat, so the range is the projection.
    assert all(p.low == p.seats == p.high for p in projection.parties)


def test_every_seat_declared_projects_the_result_exactly() -> None:
    results = [
        declared("A", Con=0.45, Lab=0.46),
        declared("B", Con=0.50, Lab=0.40),
        declared("C", Con=0.20, Lab=0.70),
        DeclaredSeat("D", "Lab", {}),  # a rush counts by its winner
    ]
    projection = project(FOUR, results)
    assert projection is not None
    assert {p.party: (p.seats, p.low, p.high) for p in projection.parties} == {
        "Lab": (3, 3, 3),
        "Con": (1, 1, 1),
    }


def test_regional_swing_uses_the_region_once_enough_of_it_has_declared() -> None:
    # The North's declared seat swings 10 points to Lab, the South's not at all.
    four = election(
        seat("A", "North", "England", Con=0.50, Lab=0.40),
        seat("B", "North", "England", Con=0.52, Lab=0.38),
        seat("C", "South", "England", Con=0.60, Lab=0.30),
        seat("D", "South", "England", Con=0.30, Lab=0.60),
    )
    results = [declared("A", Con=0.40, Lab=0.50), declared("D", Con=0.30, Lab=0.60)]
    uniform = project(four, results, model="uniform")
    regional = project(four, results, model="regional", min_region_seats=1)
    assert uniform is not None and regional is not None
    # Uniform: Con -5, Lab +5 everywhere: B 47-43 Con, C 55-35 Con.
    assert uniform.seats_of("Lab") == 2 and uniform.seats_of("Con") == 2
    # Regional: B takes the North's -10/+10 (42-48 Lab), C the South's nothing (Con).
    assert regional.seats_of("Lab") == 3 and regional.seats_of("Con") == 1
    assert regional.levels == {"region": 2}
    # With too few of the region declared, it falls back to the nation, then the nation's
    # swing is the national one here (one nation).
    fallback = project(four, results, model="regional", min_region_seats=2)
    assert fallback is not None
    assert fallback.levels == {"nation": 2}
    assert fallback.seats_of("Lab") == uniform.seats_of("Lab")


def test_a_nation_of_its_own_parties_is_not_diluted_by_the_rest() -> None:
    # Scotland: SNP v Lab. England's declared seats say nothing of the SNP; nationally the SNP
    # change averages down to half of Scotland's.
    baseline = election(
        seat("E1", "North", "England", Con=0.5, Lab=0.4),
        seat("E2", "North", "England", Con=0.5, Lab=0.4),
        seat("S1", "Scotland", "Scotland", SNP=0.45, Lab=0.35),
        seat("S2", "Scotland", "Scotland", SNP=0.52, Lab=0.34),
    )
    results = [declared("E1", Con=0.5, Lab=0.4), declared("S1", SNP=0.30, Lab=0.50)]
    uniform = project(baseline, results, model="uniform")
    regional = project(baseline, results, model="regional", min_region_seats=1)
    assert uniform is not None and regional is not None
    # Uniform: SNP -7.5, Lab +7.5: S2 44.5-41.5 stays SNP. Scotland's own -15/+15: 37-49 Lab.
    assert uniform.seats_of("SNP") == 1
    assert regional.seats_of("SNP") == 0 and regional.seats_of("Lab") == 2
    assert regional.levels == {"region": 2}


def test_the_same_seats_project_the_same_whoever_asks() -> None:
    register = load_register(DATA_DIR)
    baseline = Baseline.of(register)
    refs = list(register.constituencies.values())[:120]
    results = [
        DeclaredSeat(ref.ons_id, ref.notional_2019_winner, dict(ref.notional_2019_shares))
        for ref in refs
    ]
    first = project(baseline, results)
    again = project(baseline, list(reversed(results)))
    assert first is not None and again is not None
    assert first.parties == again.parties
    # No change anywhere: every undeclared seat goes to its notional winner.
    notional: dict[str, int] = {}
    for ref in register.constituencies.values():
        notional[ref.notional_2019_winner] = notional.get(ref.notional_2019_winner, 0) + 1
    assert {p.party: p.seats for p in first.parties if p.seats} == notional


@pytest.mark.parametrize("resamples", [10, 40])
def test_the_range_brackets_the_projection(resamples: int) -> None:
    # A swings 12 to Lab, B 1 to Con. C (Con by 14) falls under A's swing alone, holds
    # under B's alone and under their mean (-5.5): resamples drawing only A give Lab C.
    baseline = election(
        seat("A", "North", "England", Con=0.50, Lab=0.40),
        seat("B", "North", "England", Con=0.55, Lab=0.35),
        seat("C", "South", "England", Con=0.52, Lab=0.38),
        seat("D", "South", "England", Con=0.30, Lab=0.60),
    )
    results = [declared("A", Con=0.38, Lab=0.52), declared("B", Con=0.56, Lab=0.34)]
    projection = project(baseline, results, model="uniform", resamples=resamples)
    assert projection is not None
    for party in projection.parties:
        assert party.low <= party.seats <= party.high
    lab = next(p for p in projection.parties if p.party == "Lab")
    assert (lab.seats, lab.high) == (2, 3)


def test_the_error_table_counts_seats_in_the_wrong_column() -> None:
    assert seats_wrong({"Lab": 3, "Con": 1}, {"Lab": 2, "Con": 2}) == 1
    # With every seat declared each model is exact, and the 2024 exit poll is 19 seats off.
    lines = table(DATA_DIR, [650], resamples=5)
    rows = {tuple(line.split()[:2]): line.split()[-1] for line in lines[1:]}
    assert rows[("650", "uniform")] == rows[("650", "regional")] == "0"
    assert rows[("exit", "poll")] == "19"


def test_a_kept_range_moves_with_fresh_central_figures_and_closes_when_every_seat_is_in() -> None:
    baseline, seats = ge2024_seats(650)
    projecting = Projecting(baseline, resamples=40)
    running = RunningProjection(projecting)
    for seat in seats[:150]:
        running.put(seat)
    ranged = running.projection()
    assert ranged is not None
    assert any(p.low < p.high for p in ranged.parties)
    for seat in seats[150:400]:
        running.put(seat)
    kept = running.projection(range_from=ranged)
    fresh = running.projection()
    assert kept is not None and fresh is not None
    # The central figures are those of a fresh projection; only the range is kept.
    assert {p.party: p.seats for p in kept.parties} == {p.party: p.seats for p in fresh.parties}
    assert kept.seats_declared == fresh.seats_declared == 400
    undeclared = len(baseline.seats) - 400
    for party in kept.parties:
        assert party.declared <= party.low <= party.seats <= party.high
        assert party.high <= party.declared + undeclared
    for seat in seats[400:]:
        running.put(seat)
    final = running.projection(range_from=ranged)
    assert final is not None
    assert all(p.low == p.seats == p.high == p.declared for p in final.parties)


def test_the_range_is_made_afresh_once_enough_of_the_night_has_passed() -> None:
    baseline, _ = ge2024_seats(1)
    projecting = Projecting(baseline, range_every=dt.timedelta(seconds=60))
    at = dt.datetime(2024, 7, 5, 1, 0, tzinfo=dt.UTC)
    assert projecting.range_due(None, at)
    assert projecting.range_due(at, None)
    assert not projecting.range_due(at, at + dt.timedelta(seconds=59))
    assert projecting.range_due(at, at + dt.timedelta(seconds=60))
    assert Projecting(baseline).range_due(at, at)  # 0: every snapshot


def test_the_projection_does_not_depend_on_the_order_seats_were_put_in() -> None:
    baseline, seats = ge2024_seats(300)
    running = RunningProjection(Projecting(baseline, resamples=40))
    for seat in reversed(seats):
        running.put(seat)
    assert running.projection() == project(baseline, seats, resamples=40)


@pytest.mark.parametrize("at_once", [1, 3, 40])
def test_the_range_is_the_same_however_many_weightings_are_made_at_once(
    at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 resamples of the 2024 register, made 1, 3 (not a divisor of 40) and all at a time:
    # the seats' shares are made in pieces to hold memory down, never to change the answer.
    register = load_register(DATA_DIR)
    baseline = Baseline.of(register)
    refs = list(register.constituencies.values())
    results = [
        DeclaredSeat(
            ref.ons_id,
            "Lab",
            {"Lab": ref.notional_2019_shares.get("Lab", 0.0) + 0.1 * (i % 3), "Con": 0.2},
        )
        for i, ref in enumerate(refs[:200])
    ]
    whole = project(baseline, results, resamples=40)
    monkeypatch.setattr(projection_rules, "WEIGHTINGS_AT_ONCE", at_once)
    assert project(baseline, results, resamples=40) == whole


def test_a_seat_whose_every_share_falls_below_zero_goes_to_the_first_column() -> None:
    # Shares are floored at zero before the winner is picked: a seat every party's swing
    # takes below zero has no winner by its shares, and goes to the first column, as before.
    notional = np.array([[0.10, 0.20], [0.60, 0.05]])
    table = np.array([[[-0.5, -0.3]]])  # one weighting, one group: every seat takes it
    source = np.zeros((1, 2), dtype=np.int64)
    assert projection_rules._winners(notional, table, source).tolist() == [[0, 0]]
    table = np.array([[[-0.5, -0.1]]])
    assert projection_rules._winners(notional, table, source).tolist() == [[1, 0]]
