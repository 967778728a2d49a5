"""Every raw message gets exactly one verdict, with the reason code the desk expects."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.rejection import RejectionReason
from streams.reference import Register, load_register
from streams.validation import Accepted, FeedPosition, Rejected, validate_message

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "ge2024"
BST = dt.timezone(dt.timedelta(hours=1))
POSITION = FeedPosition(topic="declarations", partition=2, offset=41, key=b"E14001497")


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


def south_west_norfolk(register: Register) -> dict[str, Any]:
    seat = register.constituencies["E14001497"]
    candidates = []
    for index, ref in enumerate(sorted(seat.candidates.values(), key=lambda c: c.person_id)):
        candidates.append(
            {
                "person_id": ref.person_id,
                "name": ref.name,
                "party": ref.party.model_dump(),
                "votes": 1000 + index,
                "elected": False,
            }
        )
    candidates[-1]["elected"] = True
    valid = sum(c["votes"] for c in candidates)
    return {
        "schema_version": "1",
        "message_type": "declaration",
        "election_id": register.election_id,
        "ballot_id": seat.ballot_id,
        "constituency_id": seat.ons_id,
        "constituency_name": seat.name,
        "kind": "result",
        "revision": 1,
        "declared_at": dt.datetime(2024, 7, 5, 7, 0, tzinfo=BST).isoformat(),
        "electorate": 75000,
        "valid_votes": valid,
        "rejected_ballots": 100,
        "candidates": candidates,
        "source": "test",
    }


def verdict_for(payload: dict[str, Any] | bytes, register: Register) -> Accepted | Rejected:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return validate_message(raw, POSITION, register)


def test_a_good_declaration_is_accepted(register: Register) -> None:
    verdict = verdict_for(south_west_norfolk(register), register)
    assert isinstance(verdict, Accepted)
    assert verdict.message.constituency_name == "South West Norfolk"  # type: ignore[union-attr]


def _mutate(payload: dict[str, Any], change: str) -> dict[str, Any]:
    if change == "votes_do_not_add_up":
        payload["valid_votes"] += 1
    elif change == "negative_votes":
        payload["candidates"][0]["votes"] = -5
    elif change == "missing_field":
        del payload["kind"]
    elif change == "other_election":
        payload["election_id"] = "parl.2019-12-12"
    elif change == "before_polls_closed":
        payload["declared_at"] = "2024-07-04T21:30:00+01:00"
    elif change == "unknown_seat":
        payload["constituency_id"] = "E14009999"
    elif change == "stranger":
        payload["candidates"][0]["person_id"] = 999_999_999
    elif change == "two_elected":
        payload["candidates"][0]["elected"] = True
    elif change == "future_schema":
        payload["schema_version"] = "2"
    elif change == "naive_time":
        payload["declared_at"] = "2024-07-05T07:00:00"
    return payload


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("votes_do_not_add_up", RejectionReason.FIGURES_DO_NOT_ADD_UP),
        ("two_elected", RejectionReason.FIGURES_DO_NOT_ADD_UP),
        ("negative_votes", RejectionReason.SCHEMA_VIOLATION),
        ("missing_field", RejectionReason.SCHEMA_VIOLATION),
        ("naive_time", RejectionReason.SCHEMA_VIOLATION),
        ("other_election", RejectionReason.WRONG_ELECTION),
        ("before_polls_closed", RejectionReason.DECLARED_BEFORE_POLLS_CLOSED),
        ("unknown_seat", RejectionReason.UNKNOWN_CONSTITUENCY),
        ("stranger", RejectionReason.UNKNOWN_CANDIDATE),
        ("future_schema", RejectionReason.UNSUPPORTED_SCHEMA_VERSION),
    ],
)
def test_a_bad_declaration_is_rejected_with_its_reason(
    register: Register, change: str, reason: RejectionReason
) -> None:
    verdict = verdict_for(_mutate(south_west_norfolk(register), change), register)
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason is reason
    assert verdict.rejection.detail


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_garbage_is_rejected_and_keeps_the_original_bytes(register: Register, raw: bytes) -> None:
    verdict = verdict_for(raw, register)
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason in {
        RejectionReason.MALFORMED_JSON,
        RejectionReason.SCHEMA_VIOLATION,
    }
    assert base64.b64decode(verdict.rejection.original_b64) == raw
    assert verdict.rejection.source_offset == 41
    assert verdict.rejection.original_key == "E14001497"


def test_the_exit_poll_is_accepted(register: Register) -> None:
    exit_poll = {
        "schema_version": "1",
        "message_type": "exit_poll",
        "election_id": register.election_id,
        "published_at": "2024-07-04T22:00:00+01:00",
        "projections": [{"party": "Lab", "seats": 410}, {"party": "Others", "seats": 240}],
        "source": "test",
    }
    assert isinstance(verdict_for(exit_poll, register), Accepted)
