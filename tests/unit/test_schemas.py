"""The message contracts hold the rules of a declaration, whoever builds one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas import (
    SCHEMA_VERSION,
    Alert,
    Declaration,
    ExitPoll,
    Rejection,
    SeatResult,
    StateOfParties,
    common,
)
from schemas.common import ballot_id_for
from schemas.declaration import FIGURES_ERROR

BST = dt.timezone(dt.timedelta(hours=1))
ELECTION = "parl.2024-07-04"
BALLOT = "parl.houghton-and-sunderland-south.2024-07-04"


def party(abbreviation: str) -> dict[str, Any]:
    return {"ec_id": None, "abbreviation": abbreviation, "name": f"Party {abbreviation}"}


def declaration(votes: list[int], **changes: Any) -> dict[str, Any]:
    """A consistent result: the first candidate with the most votes is elected."""
    top = max(votes)
    winner = votes.index(top)
    payload: dict[str, Any] = {
        "election_id": ELECTION,
        "ballot_id": BALLOT,
        "constituency_id": "E14001295",
        "constituency_name": "Houghton and Sunderland South",
        "kind": "result",
        "revision": 1,
        "declared_at": dt.datetime(2024, 7, 4, 23, 17, tzinfo=BST),
        "electorate": sum(votes) + 5000,
        "valid_votes": sum(votes),
        "rejected_ballots": 100,
        "candidates": [
            {
                "person_id": 1000 + index,
                "name": f"Candidate {index}",
                "party": party(f"P{index}"),
                "votes": count,
                "elected": index == winner,
            }
            for index, count in enumerate(votes)
        ],
        "source": "test",
    }
    payload.update(changes)
    return payload


def error_types(payload: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as raised:
        Declaration.model_validate(payload)
    return {error["type"] for error in raised.value.errors()}


def test_a_consistent_result_validates() -> None:
    result = Declaration.model_validate(declaration([18_837, 7_169, 5_514]))
    assert result.winner is not None and result.winner.votes == 18_837
    assert result.schema_version == SCHEMA_VERSION == "1"
    assert result.message_type == "declaration"


def test_no_negative_votes() -> None:
    payload = declaration([500, 300])
    payload["candidates"][1]["votes"] = -300
    payload["valid_votes"] = 200
    assert "greater_than_equal" in error_types(payload)


def test_votes_add_up_to_the_valid_votes() -> None:
    assert error_types(declaration([500, 300], valid_votes=801)) == {FIGURES_ERROR}


def test_exactly_one_elected_with_the_most_votes() -> None:
    nobody = declaration([500, 300])
    nobody["candidates"][0]["elected"] = False
    assert error_types(nobody) == {FIGURES_ERROR}
    two = declaration([500, 300])
    two["candidates"][1]["elected"] = True
    assert error_types(two) == {FIGURES_ERROR}
    runner_up = declaration([500, 300])
    runner_up["candidates"][0]["elected"], runner_up["candidates"][1]["elected"] = False, True
    assert error_types(runner_up) == {FIGURES_ERROR}


def test_a_tie_needs_a_declared_tie_and_a_declared_tie_needs_a_tie() -> None:
    assert error_types(declaration([400, 400, 10])) == {FIGURES_ERROR}
    tied = Declaration.model_validate(declaration([400, 400, 10], tie_declared=True))
    assert tied.winner is not None and tied.winner.person_id == 1000
    by_lot = declaration([400, 400, 10], tie_declared=True)
    by_lot["candidates"][0]["elected"], by_lot["candidates"][1]["elected"] = False, True
    assert Declaration.model_validate(by_lot).winner.person_id == 1001  # type: ignore[union-attr]
    assert error_types(declaration([401, 400], tie_declared=True)) == {FIGURES_ERROR}


def test_ballots_counted_fit_in_the_electorate() -> None:
    assert error_types(declaration([500, 300], electorate=850)) == {FIGURES_ERROR}
    assert Declaration.model_validate(declaration([500, 300], electorate=900))


def test_a_result_needs_all_its_figures() -> None:
    assert error_types(declaration([500, 300], rejected_ballots=None)) == {FIGURES_ERROR}
    no_votes = declaration([500, 300])
    no_votes["candidates"][1]["votes"] = None
    assert error_types(no_votes) == {FIGURES_ERROR}


def test_declared_at_must_carry_an_offset() -> None:
    naive = declaration([500, 300], declared_at=dt.datetime(2024, 7, 4, 23, 17))
    assert "value_error" in error_types(naive)
    assert "value_error" in error_types(declaration([500, 300], declared_at="2024-07-04T23:17:00"))
    utc = declaration([500, 300], declared_at="2024-07-04T22:17:00Z")
    assert Declaration.model_validate(utc).declared_at == dt.datetime(
        2024, 7, 4, 23, 17, tzinfo=BST
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("election_id", "parl.houghton-and-sunderland-south.2024-07-04"),  # a ballot id
        ("election_id", "general-election-2024"),
        ("ballot_id", "parl.2024-07-04"),  # an election id
        ("ballot_id", "local.houghton-and-sunderland-south.2024-07-04"),  # another election type
        ("ballot_id", "parl.houghton-and-sunderland-south.2019-12-12"),  # another date
        ("constituency_id", "Houghton"),
    ],
)
def test_bad_ids_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Declaration.model_validate(declaration([500, 300], **{field: value}))


def test_a_rush_names_the_winner_without_votes() -> None:
    payload = declaration([500, 300], kind="rush", electorate=None, valid_votes=None)
    payload["rejected_ballots"] = None
    for candidate in payload["candidates"]:
        candidate["votes"] = None
    rush = Declaration.model_validate(payload)
    assert rush.winner is not None and not rush.has_full_figures
    payload["candidates"][0]["elected"] = False
    assert error_types(payload) == {FIGURES_ERROR}  # still exactly one elected


def test_a_recount_notice_elects_no_one() -> None:
    payload = declaration([500, 300], kind="recount", electorate=None, valid_votes=None)
    payload["rejected_ballots"] = None
    for candidate in payload["candidates"]:
        candidate.update(votes=None, elected=False)
    notice = Declaration.model_validate(payload)
    assert notice.winner is None
    payload["candidates"][0]["elected"] = True
    assert error_types(payload) == {FIGURES_ERROR}


def test_a_correction_is_checked_like_a_result() -> None:
    assert Declaration.model_validate(declaration([500, 300], kind="correction", revision=2))
    assert error_types(declaration([500, 300], kind="correction", valid_votes=1)) == {FIGURES_ERROR}


def test_unknown_fields_and_versions_are_refused() -> None:
    with pytest.raises(ValidationError):
        Declaration.model_validate(declaration([500, 300], winner="Bridget Phillipson"))
    with pytest.raises(ValidationError):
        Declaration.model_validate(declaration([500, 300], schema_version="2"))
    with pytest.raises(ValidationError):
        Declaration.model_validate(declaration([500, 300], revision=0))


@pytest.mark.parametrize(
    "model", [Declaration, ExitPoll, SeatResult, StateOfParties, Alert, Rejection]
)
def test_every_message_carries_schema_version_and_message_type(model: type[BaseModel]) -> None:
    fields = model.model_fields
    assert fields["schema_version"].default == SCHEMA_VERSION
    assert isinstance(fields["message_type"].default, str)


def test_an_exit_poll_adds_up_to_the_seats() -> None:
    poll = {
        "election_id": ELECTION,
        "published_at": dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST),
        "total_seats": 650,
        "projections": [{"party": "Lab", "seats": 410}, {"party": "Others", "seats": 240}],
        "source": "test",
    }
    assert ExitPoll.model_validate(poll).schema_version == "1"
    with pytest.raises(ValidationError, match="add up to 649"):
        ExitPoll.model_validate({**poll, "projections": [{"party": "Lab", "seats": 649}]})
    with pytest.raises(ValidationError, match="offset"):
        ExitPoll.model_validate({**poll, "published_at": dt.datetime(2024, 7, 4, 22, 0)})


# Two to twelve candidates with realistic counts, at least one vote between them.
vote_splits = st.lists(st.integers(min_value=0, max_value=60_000), min_size=2, max_size=12).filter(
    lambda votes: sum(votes) > 0
)


@settings(max_examples=200, deadline=None)
@given(votes=vote_splits, rejected=st.integers(0, 2_000), spare=st.integers(0, 50_000))
def test_any_consistent_split_validates(votes: list[int], rejected: int, spare: int) -> None:
    tie = votes.count(max(votes)) > 1
    payload = declaration(
        votes,
        rejected_ballots=rejected,
        electorate=sum(votes) + rejected + spare,
        tie_declared=tie,
    )
    result = Declaration.model_validate(payload)
    assert result.valid_votes == sum(votes)
    assert result.winner is not None and result.winner.votes == max(votes)


@settings(max_examples=200, deadline=None)
@given(votes=vote_splits, error=st.integers(-500, 500).filter(lambda e: e != 0))
def test_any_perturbed_total_fails(votes: list[int], error: int) -> None:
    tie = votes.count(max(votes)) > 1
    total = max(sum(votes) + error, 0)
    if total == sum(votes):
        return  # clamped back onto the true total: nothing perturbed
    payload = declaration(votes, valid_votes=total, electorate=sum(votes) + 1_000, tie_declared=tie)
    assert error_types(payload) == {FIGURES_ERROR}


def test_a_ballot_id_built_for_the_register_is_not_checked_again_on_the_nights_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = ballot_id_for("parl.2024-07-04", "a-seat-only-this-test-builds")
    assert built == "parl.a-seat-only-this-test-builds.2024-07-04"

    Declaration.model_validate(declaration([300, 200]))  # the election's id checked once

    def no_second_check(value: str) -> None:
        raise AssertionError(f"{value} parsed again")

    monkeypatch.setattr(common.IdBuilder, "from_id", no_second_check)
    payload = declaration([300, 200], ballot_id=built)
    assert Declaration.model_validate(payload).ballot_id == built
    with pytest.raises(ValidationError, match=r"never-built\.2024-07-04 parsed again"):
        Declaration.model_validate({**payload, "ballot_id": "parl.never-built.2024-07-04"})
