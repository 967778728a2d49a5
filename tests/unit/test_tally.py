"""Tally rules on the real 2024 night: seats, votes, gains and every seat's result."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.declaration import Declaration, DeclarationKind
from scripts.night_builder import Night, build_night
from streams.tally import Contribution, seat_contribution, seat_result, state_of_parties
from tests.unit.ge2024 import (
    DATA_DIR,
    OFFICIAL_SEATS,
    OFFICIAL_VALID_VOTES,
    constituency_rows,
    gains_and_losses,
    votes_by_party,
)


@pytest.fixture(scope="module")
def night() -> Night:
    return build_night(DATA_DIR)


def _whole_night(night: Night) -> Counter[str]:
    totals: Counter[str] = Counter()
    for declaration in night.declarations:
        ref = night.register.constituencies[declaration.constituency_id]
        totals.update(seat_contribution(declaration, ref, None))
    return totals


def test_the_whole_night_adds_up_to_the_official_result(night: Night) -> None:
    state = state_of_parties(_whole_night(night), night.register, 650, None, None)
    seats = {p.party: p.seats for p in state.parties if p.seats}
    assert seats == OFFICIAL_SEATS
    assert {p.party: p.votes for p in state.parties} == dict(votes_by_party())
    assert state.total_votes == OFFICIAL_VALID_VOTES
    gains, losses = gains_and_losses()
    assert {p.party: p.gains for p in state.parties if p.gains} == dict(gains)
    assert {p.party: p.losses for p in state.parties if p.losses} == dict(losses)
    assert state.seats_declared == 650
    assert state.majority_party == "Lab"
    assert state.largest_party == "Lab"


def test_every_seat_matches_the_library(night: Night) -> None:
    rows = constituency_rows()
    for declaration in night.declarations:
        ref = night.register.constituencies[declaration.constituency_id]
        result = seat_result(declaration, ref, 1)
        row = rows[declaration.constituency_id]
        assert result.result_label == row["Result"], ref.name
        assert result.majority == int(row["Majority"]), ref.name
        assert result.winning_party == row["First party"], ref.name


def test_nothing_declared_is_an_empty_state(night: Night) -> None:
    state = state_of_parties({}, night.register, 0, None, None)
    assert state.seats_declared == 0
    assert state.parties == []
    assert state.majority_line == 326


def _seat(night: Night, name: str) -> Declaration:
    return next(d for d in night.declarations if d.constituency_name == name)


def _rush(result: Declaration) -> Declaration:
    candidates = [c.model_copy(update={"votes": None}) for c in result.candidates]
    return result.model_copy(
        update={
            "kind": DeclarationKind.RUSH,
            "candidates": candidates,
            "electorate": None,
            "valid_votes": None,
            "rejected_ballots": None,
        }
    )


def test_a_rush_counts_the_seat_and_leaves_votes_pending(night: Night) -> None:
    result = _seat(night, "South West Norfolk")
    ref = night.register.constituencies[result.constituency_id]
    rush = seat_contribution(_rush(result), ref, None)
    assert rush == {
        "party:Lab:seats": 1,
        "party:Lab:gains": 1,
        "party:Con:losses": 1,
        "total:declared": 1,
    }
    assert seat_result(_rush(result), ref, 1).figures_pending


def test_a_recount_notice_keeps_the_numbers_and_marks_the_seat(night: Night) -> None:
    result = _seat(night, "South West Norfolk")
    ref = night.register.constituencies[result.constituency_id]
    before = seat_contribution(result, ref, None)
    notice = result.model_copy(
        update={
            "kind": DeclarationKind.RECOUNT,
            "revision": 2,
            "candidates": [c.model_copy(update={"elected": False}) for c in result.candidates],
        }
    )
    assert seat_contribution(notice, ref, before) == before
    marked = seat_result(notice, ref, 2, previous=seat_result(result, ref, 1))
    assert marked.recount and marked.winning_party == "Lab" and marked.majority == 630


def test_the_speakers_seat_is_the_speakers(night: Night) -> None:
    chorley = _seat(night, "Chorley")
    ref = night.register.constituencies[chorley.constituency_id]
    assert seat_contribution(chorley, ref, None)["party:Spk:seats"] == 1
    assert seat_result(chorley, ref, 1).result_label == "Spk hold"


def test_a_declared_tie_is_represented(night: Night) -> None:
    result = _seat(night, "South West Norfolk")
    ref = night.register.constituencies[result.constituency_id]
    top_two = sorted(result.candidates, key=lambda c: -(c.votes or 0))[:2]
    level = ((top_two[0].votes or 0) + (top_two[1].votes or 0)) // 2
    tied = [
        c.model_copy(update={"votes": level})
        if c.person_id in {t.person_id for t in top_two}
        else c
        for c in result.candidates
    ]
    declaration = Declaration.model_validate(
        {
            **result.model_dump(),
            "candidates": [c.model_dump() for c in tied],
            "valid_votes": sum(c.votes or 0 for c in tied),
            "tie_declared": True,
        }
    )
    seat = seat_result(declaration, ref, 1)
    assert seat.tie and seat.majority == 0 and seat.winner is not None


def _apply(totals: Counter[str], old: Contribution | None, new: Contribution) -> Counter[str]:
    totals.subtract(old or {})
    totals.update(new)
    return +totals


@settings(max_examples=60, deadline=None)
@given(order=st.permutations([0, 1, 2]), seat_index=st.integers(0, 649))
def test_any_order_of_revisions_ends_at_the_highest(order: list[int], seat_index: int) -> None:
    night = build_night_cached()
    result = night.declarations[seat_index]
    ref = night.register.constituencies[result.constituency_id]
    revisions = [
        _rush(result).model_copy(update={"revision": 1}),
        result.model_copy(update={"revision": 2}),
        result.model_copy(update={"revision": 3, "kind": DeclarationKind.CORRECTION}),
    ]
    totals: Counter[str] = Counter()
    applied_revision, contribution = 0, None
    for index in order:
        declaration = revisions[index]
        if declaration.revision <= applied_revision:
            continue  # equal or lower revisions change nothing
        new = seat_contribution(declaration, ref, contribution)
        totals = _apply(totals, contribution, new)
        applied_revision, contribution = declaration.revision, new
    assert totals == Counter(seat_contribution(revisions[2], ref, None))


_NIGHT: list[Night] = []


def build_night_cached() -> Night:
    if not _NIGHT:
        _NIGHT.append(build_night(DATA_DIR))
    return _NIGHT[0]
