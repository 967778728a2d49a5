"""Tally rules on the real 2024 night: seats, votes, gains and every seat's result."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.declaration import Declaration, DeclarationKind
from streams.rules.reference import ConstituencyRef
from streams.rules.tally import (
    Contribution,
    seat_contribution,
    seat_result,
    seat_result_json,
    state_of_parties,
)
from tests.unit.ge2024 import OFFICIAL_SEATS, OFFICIAL_VALID_VOTES
from tests.unit.tally_fixtures import (
    CHORLEY,
    SOUTH_WEST_NORFOLK,
    candidate_rows,
    constituency_rows,
    declaration_of,
    eventful_revisions,
    gains_and_losses,
    night,
    recount_notice,
    revised,
    rush,
    swapped_top_two,
    tied,
    votes_by_party,
)


def _ref(declaration: Declaration) -> ConstituencyRef:
    return night().register.constituencies[declaration.constituency_id]


def _whole_night() -> Counter[str]:
    totals: Counter[str] = Counter()
    for declaration in night().declarations:
        totals.update(seat_contribution(declaration, _ref(declaration), None))
    return totals


def _apply(totals: Counter[str], old: Contribution | None, new: Contribution) -> Counter[str]:
    """What the store does: take out the seat's old contribution, add the new."""
    totals.subtract(old or {})
    totals.update(new)
    return +totals  # drop zeros, as contributions omit them


def test_the_whole_night_adds_up_to_the_official_result() -> None:
    state = state_of_parties(_whole_night(), night().register, 650, None, None)
    assert {p.party: p.seats for p in state.parties if p.seats} == OFFICIAL_SEATS
    assert {p.party: p.votes for p in state.parties} == dict(votes_by_party())
    assert state.total_votes == OFFICIAL_VALID_VOTES
    gains, losses = gains_and_losses()
    assert {p.party: p.gains for p in state.parties if p.gains} == dict(gains)
    assert {p.party: p.losses for p in state.parties if p.losses} == dict(losses)
    assert all(p.seats_change == p.gains - p.losses for p in state.parties)
    assert state.seats_declared == state.seats_with_figures == 650
    rows = constituency_rows().values()
    assert state.electorate_declared == sum(int(r["Electorate"]) for r in rows)
    assert state.turnout == pytest.approx(OFFICIAL_VALID_VOTES / state.electorate_declared)
    assert state.largest_party == state.majority_party == "Lab"
    assert sum(p.share for p in state.parties) == pytest.approx(1.0)
    ranking = [(-p.seats, -p.votes) for p in state.parties]
    assert ranking == sorted(ranking)


def test_share_change_is_against_notional_2019_in_the_seats_declared() -> None:
    state = state_of_parties(_whole_night(), night().register, 650, None, None)
    labour = next(p for p in state.parties if p.party == "Lab")
    notional = sum(
        ref.notional_2019_shares.get("Lab", 0.0) * int(constituency_rows()[ons]["Valid votes"])
        for ons, ref in night().register.constituencies.items()
    )
    assert labour.share_change == pytest.approx(
        labour.share - notional / OFFICIAL_VALID_VOTES, abs=1e-5
    )
    # 33.7% against a notional 31.5% weighted by each seat's 2024 votes: +2.2 points (the
    # headline +1.6 compares with the 2019 result on the old boundaries, not the notionals).
    assert labour.share == pytest.approx(0.337, abs=5e-4)
    assert labour.share_change == pytest.approx(0.022, abs=5e-4)


def test_every_seat_matches_the_library() -> None:
    rows = constituency_rows()
    candidates = candidate_rows()
    for declaration in night().declarations:
        result = seat_result(declaration, _ref(declaration), 1)
        row = rows[declaration.constituency_id]
        name = row["Constituency name"]
        assert result.result_label == row["Result"], name
        assert result.majority == int(row["Majority"]), name
        assert result.winning_party == row["First party"], name
        assert result.candidates[1].party == row["Second party"], name
        assert result.gain == ("gain" in row["Result"]), name
        valid = int(row["Valid votes"])
        assert result.majority_share == pytest.approx(int(row["Majority"]) / valid), name
        assert result.turnout == pytest.approx(valid / int(row["Electorate"])), name
        assert not result.figures_pending and not result.recount and not result.tie
        for candidate in result.candidates:
            source = candidates[candidate.person_id]
            assert candidate.votes == int(source["Votes"]), name
            assert candidate.share == pytest.approx(float(source["Share"]), abs=1e-6), name
            if source["Change"] and candidate.party != "Ind":
                change = float(source["Change"])
                assert candidate.share_change == pytest.approx(change, abs=1e-5), name


def test_butler_swing_from_the_runner_up_to_the_winner() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    seat = seat_result(result, _ref(result), 1)
    by_party = {c.party: c for c in seat.candidates}
    # Labour's change in share less the Conservatives', halved, in points.
    expected = ((by_party["Lab"].share_change or 0) - (by_party["Con"].share_change or 0)) / 2
    assert seat.swing_from == "Con"
    assert seat.swing == pytest.approx(expected * 100, abs=0.005)
    assert seat.swing is not None and seat.swing > 25  # Truss's 24,180 notional majority gone


def test_nothing_declared_is_an_empty_state() -> None:
    state = state_of_parties({}, night().register, 0, None, None)
    assert state.seats_declared == 0 and state.total_votes == 0
    assert state.parties == []
    assert state.turnout is None and state.largest_party is None and state.majority_party is None
    assert (state.majority_line, state.total_seats) == (326, 650)


def test_a_rush_counts_the_seat_and_leaves_votes_pending() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    assert seat_contribution(rush(result), _ref(result), None) == {
        "party:Lab:seats": 1,
        "party:Lab:gains": 1,
        "party:Con:losses": 1,
        "total:declared": 1,
    }
    seat = seat_result(rush(result), _ref(result), 1)
    assert seat.figures_pending and seat.result_label == "Lab gain from Con"
    assert seat.winner is not None and seat.winner.name == "Terry Jermy"
    assert seat.candidates[0].elected  # the winner listed first while votes are unknown
    assert seat.majority is None and seat.turnout is None
    assert all(c.votes is None and c.share is None for c in seat.candidates)


def test_a_rush_then_its_result_counts_as_the_result() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    ref = _ref(result)
    first = seat_contribution(rush(result), ref, None)
    second = seat_contribution(revised(result, 2, DeclarationKind.RESULT), ref, first)
    totals = _apply(Counter(first), first, second)
    assert totals == Counter(seat_contribution(result, ref, None))
    assert totals["total:declared"] == totals["total:with_figures"] == 1


def test_a_correction_replaces_the_earlier_figures() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    ref = _ref(result)
    wrong = seat_contribution(swapped_top_two(result), ref, None)
    assert wrong["party:Con:seats"] == 1 and "party:Con:losses" not in wrong
    correction = revised(result, 2, DeclarationKind.CORRECTION)
    right = seat_contribution(correction, ref, wrong)
    totals = _apply(Counter(wrong), wrong, right)
    assert totals == Counter(seat_contribution(result, ref, None))
    assert totals["party:Con:seats"] == 0 and totals["party:Lab:seats"] == 1
    seat = seat_result(correction, ref, 2)
    assert seat.kind is DeclarationKind.CORRECTION and seat.majority == 630


def test_a_recount_notice_keeps_the_numbers_and_marks_the_seat() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    ref = _ref(result)
    before = seat_contribution(result, ref, None)
    notice = recount_notice(result, 2)
    assert seat_contribution(notice, ref, before) == before
    previous = seat_result(result, ref, 1)
    marked = seat_result(notice, ref, 2, previous=previous)
    assert marked.recount and marked.kind is DeclarationKind.RECOUNT
    assert (marked.revision, marked.sequence) == (2, 2)
    assert marked.winning_party == "Lab" and marked.majority == 630
    assert marked.candidates == previous.candidates
    # The recount's result ends it.
    after = seat_result(revised(result, 3, DeclarationKind.RESULT), ref, 3)
    assert not after.recount


def test_a_recount_announced_before_any_result_declares_nothing() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    notice = recount_notice(result, 1)
    assert seat_contribution(notice, _ref(result), None) == {}
    seat = seat_result(notice, _ref(result), 1)
    assert seat.recount and seat.figures_pending
    assert seat.winner is None and seat.result_label is None and seat.candidates == []


def test_a_result_can_be_marked_as_under_recount() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    assert seat_result(rush(result), _ref(result), 1, recount=True).recount


def test_the_speakers_seat_is_the_speakers() -> None:
    chorley = declaration_of(CHORLEY)
    contribution = seat_contribution(chorley, _ref(chorley), None)
    assert contribution["party:Spk:seats"] == 1
    assert not any(key.endswith((":gains", ":losses")) for key in contribution)
    assert seat_result(chorley, _ref(chorley), 1).result_label == "Spk hold"


@pytest.mark.parametrize("elect_second", [True, False])
def test_a_declared_tie_goes_to_the_candidate_chosen_by_lot(elect_second: bool) -> None:
    declaration = tied(declaration_of(SOUTH_WEST_NORFOLK), elect_second)
    ref = _ref(declaration)
    chosen = declaration.winner
    assert chosen is not None
    seat = seat_result(declaration, ref, 1)
    assert seat.tie and seat.majority == 0 and seat.majority_share == 0
    assert seat.winner is not None and seat.winner.person_id == chosen.person_id
    assert seat.candidates[0].person_id == chosen.person_id
    party = chosen.party.abbreviation
    other = {"Lab": "Con", "Con": "Lab"}[party]
    assert seat.winning_party == party and seat.swing_from == other
    contribution = seat_contribution(declaration, ref, None)
    assert contribution[f"party:{party}:seats"] == 1
    assert (f"party:{party}:gains" in contribution) == (party != "Con")


@settings(max_examples=100, deadline=None)
@given(
    seat_index=st.integers(0, 649),
    deliveries=st.lists(st.integers(0, 2), max_size=8).flatmap(
        lambda others: st.permutations([*others, 3])
    ),
)
def test_any_order_of_revisions_ends_at_the_highest(seat_index: int, deliveries: list[int]) -> None:
    result = night().declarations[seat_index]
    ref = _ref(result)
    revisions = eventful_revisions(result)
    totals: Counter[str] = Counter()
    applied_revision, contribution = 0, None
    for index in deliveries:
        declaration = revisions[index]
        if declaration.revision <= applied_revision:
            continue  # an equal or lower revision changes nothing
        new = seat_contribution(declaration, ref, contribution)
        totals = _apply(totals, contribution, new)
        applied_revision, contribution = declaration.revision, new
    assert totals == Counter(seat_contribution(revisions[3], ref, None))


def _variants(result: Declaration) -> list[Declaration]:
    """Every shape a seat's result takes: declared, a rush, a recount notice, a tie,
    corrections that swap the winner, a rehearsal's, a time in UTC or with microseconds;
    each read from its JSON as a worker reads it."""
    shapes = [
        result,
        rush(result),
        recount_notice(result, 2),
        tied(result),
        swapped_top_two(result),
        *eventful_revisions(result),
        result.model_copy(update={"rehearsal": True}),
        result.model_copy(update={"declared_at": result.declared_at.astimezone(dt.UTC)}),
        result.model_copy(update={"declared_at": result.declared_at.replace(microsecond=120)}),
    ]
    return [Declaration.model_validate_json(shape.model_dump_json()) for shape in shapes]


def test_the_stored_result_json_is_the_models_byte_for_byte() -> None:
    checked = 0
    for declaration in night().declarations:
        shapes = _variants(declaration) if checked % 50 == 0 else [declaration]
        for shape in shapes:
            ref = _ref(shape)
            model = seat_result(shape, ref, 0)
            assert seat_result_json(shape, ref) == model.model_dump_json().encode(), (
                shape.constituency_id,
                shape.kind,
            )
        checked += 1
    assert checked == 650
