"""Every raw message gets exactly one verdict, with the reason code the desk expects."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.rejection import RejectionReason
from streams.rules.reference import Register, load_register
from streams.rules.validation import (
    Accepted,
    FeedPosition,
    NightWindow,
    Rejected,
    _parse,
    _parse_general,
    _Reject,
    kafka_time,
    validate_message,
)
from streams.settings import Settings

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"
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


# ---- dated implausibly far from the election ----

# Judged after the night, so only the night's end can refuse a time of the night.
AFTER_THE_NIGHT = dt.datetime(2024, 7, 10, 12, 0, tzinfo=dt.UTC)
WINDOW = NightWindow(
    ends_after_polls_close=dt.timedelta(hours=72), future_margin=dt.timedelta(seconds=300)
)
ONE_SECOND = dt.timedelta(seconds=1)


def dated(
    register: Register,
    declared_at: dt.datetime | str,
    now: dt.datetime = AFTER_THE_NIGHT,
    sent_at: dt.datetime | None = None,
    window: NightWindow = WINDOW,
) -> Accepted | Rejected:
    payload = south_west_norfolk(register)
    payload["declared_at"] = (
        declared_at if isinstance(declared_at, str) else declared_at.isoformat()
    )
    position = FeedPosition("declarations", 2, 41, b"E14001497", sent_at)
    return validate_message(orjson.dumps(payload), position, register, now, window=window)


def reason_of(verdict: Accepted | Rejected) -> RejectionReason | None:
    return verdict.rejection.reason if isinstance(verdict, Rejected) else None


def test_a_declaration_dated_2099_is_refused_as_after_the_night(register: Register) -> None:
    verdict = dated(register, "2099-01-01T00:00:00+00:00")
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason is RejectionReason.DECLARED_AFTER_NIGHT_ENDED
    # The desk reads both times and the setting to change.
    assert verdict.rejection.detail == (
        "declared at 2099-01-01T00:00:00+00:00, after the night ended at "
        "2024-07-07T22:00:00+01:00 (72 hours after polls closed; "
        "ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE)"
    )


def test_2099_is_refused_with_the_settings_defaults_and_the_wall_clock(
    register: Register,
) -> None:
    payload = south_west_norfolk(register)
    payload["declared_at"] = "2099-01-01T00:00:00+00:00"
    assert reason_of(verdict_for(payload, register)) is RejectionReason.DECLARED_AFTER_NIGHT_ENDED


@pytest.mark.parametrize("hours", [72.0, 44.5, 6.0])
def test_the_night_ends_when_configured_and_not_a_second_later(
    register: Register, hours: float
) -> None:
    window = Settings(
        night_ends_hours_after_polls_close=hours, declared_at_future_margin_s=300
    ).night_window()
    night_ends = register.polls_close + dt.timedelta(hours=hours)
    assert isinstance(dated(register, night_ends, window=window), Accepted)
    assert reason_of(dated(register, night_ends + ONE_SECOND, window=window)) is (
        RejectionReason.DECLARED_AFTER_NIGHT_ENDED
    )


def test_the_default_night_outlasts_inverness_on_saturday(register: Register) -> None:
    # The 2024 night's last seat declared on Saturday 6 July, about 44 hours after polls closed.
    inverness = dt.datetime(2024, 7, 6, 18, 0, tzinfo=BST)
    default = Settings().night_window()
    assert register.polls_close + default.ends_after_polls_close > inverness
    assert isinstance(dated(register, inverness, window=default), Accepted)


# 05:00 on the night: a declaration sent now may be dated up to five minutes ahead.
ON_THE_NIGHT = dt.datetime(2024, 7, 5, 5, 0, tzinfo=BST)


def test_a_declaration_dated_beyond_the_margin_after_now_is_refused(register: Register) -> None:
    verdict = dated(register, ON_THE_NIGHT + dt.timedelta(seconds=301), now=ON_THE_NIGHT)
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason is RejectionReason.DECLARED_IN_FUTURE
    assert verdict.rejection.detail == (
        "declared at 2024-07-05T05:05:01+01:00, 00:05:01 after it was received at "
        "2024-07-05T05:00:00+01:00; more than the 300 s allowed "
        "(ELECTION_DECLARED_AT_FUTURE_MARGIN_S)"
    )
    # Two hours ahead (07:00 typed for 05:00) reads as such, measured from its Kafka timestamp.
    hours_ahead = dated(
        register, ON_THE_NIGHT + dt.timedelta(hours=2), now=AFTER_THE_NIGHT, sent_at=ON_THE_NIGHT
    )
    assert isinstance(hours_ahead, Rejected)
    assert "02:00:00 after it was sent at 2024-07-05T05:00:00+01:00" in (
        hours_ahead.rejection.detail
    )


@pytest.mark.parametrize("ahead_s", [0, 1, 299, 300])
def test_a_declaration_within_the_margin_is_accepted(register: Register, ahead_s: int) -> None:
    at = ON_THE_NIGHT + dt.timedelta(seconds=ahead_s)
    assert isinstance(dated(register, at, now=ON_THE_NIGHT), Accepted)


def test_the_margin_is_configured(register: Register) -> None:
    window = Settings(declared_at_future_margin_s=0).night_window()
    assert isinstance(dated(register, ON_THE_NIGHT, now=ON_THE_NIGHT, window=window), Accepted)
    late_by_one = dated(register, ON_THE_NIGHT + ONE_SECOND, now=ON_THE_NIGHT, window=window)
    assert reason_of(late_by_one) is RejectionReason.DECLARED_IN_FUTURE


def test_the_future_is_measured_from_when_the_message_was_sent(register: Register) -> None:
    # A backlog: sent at 05:00, read at 06:00. Dated 05:30, it was ahead when sent, which a
    # rebuild days later (reading the same Kafka timestamp) must judge the same way.
    at = ON_THE_NIGHT + dt.timedelta(minutes=30)
    for judged in (ON_THE_NIGHT + dt.timedelta(hours=1), AFTER_THE_NIGHT):
        verdict = dated(register, at, now=judged, sent_at=ON_THE_NIGHT)
        assert reason_of(verdict) is RejectionReason.DECLARED_IN_FUTURE
    assert isinstance(dated(register, at, now=judged, sent_at=at), Accepted)


def test_a_producer_clock_ahead_of_the_worker_does_not_vouch_for_itself(
    register: Register,
) -> None:
    ahead = ON_THE_NIGHT + dt.timedelta(hours=2)
    verdict = dated(register, ahead, now=ON_THE_NIGHT, sent_at=ahead)
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason is RejectionReason.DECLARED_IN_FUTURE
    assert "02:00:00 after it was received at 2024-07-05T05:00:00+01:00" in (
        verdict.rejection.detail
    )


def test_after_the_night_is_reported_before_in_the_future(register: Register) -> None:
    # 2099 is both; the night's end does not depend on any clock, so it names the reason.
    verdict = dated(register, "2099-01-01T00:00:00+00:00", now=ON_THE_NIGHT)
    assert reason_of(verdict) is RejectionReason.DECLARED_AFTER_NIGHT_ENDED


def exit_poll_published(register: Register, published_at: str) -> dict[str, Any]:
    return {
        "schema_version": "1",
        "message_type": "exit_poll",
        "election_id": register.election_id,
        "published_at": published_at,
        "projections": [{"party": "Lab", "seats": 410}, {"party": "Others", "seats": 240}],
        "source": "test",
    }


@pytest.mark.parametrize(
    ("published_at", "reason"),
    [
        ("2024-07-04T22:00:00+01:00", None),
        ("2024-07-04T22:05:00+01:00", None),
        ("2024-07-04T22:05:01+01:00", RejectionReason.DECLARED_IN_FUTURE),
        ("2099-01-01T00:00:00+00:00", RejectionReason.DECLARED_AFTER_NIGHT_ENDED),
    ],
)
def test_the_exit_poll_is_dated_within_the_night_too(
    register: Register, published_at: str, reason: RejectionReason | None
) -> None:
    raw = orjson.dumps(exit_poll_published(register, published_at))
    position = FeedPosition("declarations", 0, 1, b"exit-poll")
    as_polls_close = dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST)
    verdict = validate_message(raw, position, register, as_polls_close, window=WINDOW)
    assert reason_of(verdict) is reason
    if isinstance(verdict, Rejected):
        assert verdict.rejection.detail.startswith(f"exit poll published at {published_at}")


def test_kafka_time_reads_a_record_timestamp_and_none_for_a_record_without() -> None:
    assert kafka_time(1720126800.0) == dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST)
    assert kafka_time(-1) is None
    assert kafka_time(-0.001) is None  # -1 ms, as the rebuild divides it
    assert kafka_time(None) is None


def test_a_record_stamped_beyond_the_year_9999_is_judged_by_the_wall_clock() -> None:
    # A producer may set any 64-bit timestamp: reading it must not stop the worker.
    assert kafka_time(2**62 / 1000) is None


def test_days_ahead_read_as_days(register: Register) -> None:
    # Received as polls close, dated a day or two on (a date typed a day out, say).
    as_polls_close = dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST)
    for days, words in ((1, "1 day 00:00:01"), (2, "2 days 00:00:01")):
        at = as_polls_close + dt.timedelta(days=days, seconds=1)
        verdict = dated(register, at, now=as_polls_close)
        assert isinstance(verdict, Rejected)
        assert f", {words} after it was received" in verdict.rejection.detail


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        (b"E14001497", True),  # its own ONS id
        (None, True),  # no key names no other seat
        (b"E14001107", False),  # Blyth and Ashington's key on South West Norfolk's result
        (b"", False),
        (b"e14001497", False),
        (b"\xff\xfe\x1b[2J", False),
    ],
)
def test_a_declaration_keyed_by_another_seat_is_refused(
    register: Register, key: bytes | None, accepted: bool
) -> None:
    raw = orjson.dumps(south_west_norfolk(register))
    verdict = validate_message(raw, FeedPosition("declarations", 2, 41, key), register)
    if accepted:
        assert isinstance(verdict, Accepted)
    else:
        assert isinstance(verdict, Rejected)
        assert verdict.rejection.reason is RejectionReason.KEY_MISMATCH
        assert "E14001497" in verdict.rejection.detail
        assert "\x1b" not in verdict.rejection.detail


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("schema_version", RejectionReason.UNSUPPORTED_SCHEMA_VERSION),
        ("message_type", RejectionReason.SCHEMA_VIOLATION),
    ],
)
def test_a_declaration_must_say_its_version_and_type_though_the_model_defaults_them(
    register: Register, field: str, reason: RejectionReason
) -> None:
    payload = south_west_norfolk(register)
    del payload[field]
    verdict = verdict_for(payload, register)
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason is reason
    assert "None" in verdict.rejection.detail


def _edge_case(register: Register, change: str) -> bytes:
    payload = south_west_norfolk(register)
    first = payload["candidates"][0]
    if change == "no_schema_version":
        del payload["schema_version"]
    elif change == "no_message_type":
        del payload["message_type"]
    elif change == "exit_poll_type":
        payload["message_type"] = "exit_poll"
    elif change == "other_election":
        payload["election_id"] = "parl.2029-05-03"
    elif change.startswith("person_id="):
        first["person_id"] = int(change.split("=")[1])
    elif change == "name_in_capitals":
        first["name"] = first["name"].upper()
    elif change == "person_id_as_float":
        first["person_id"] = float(first["person_id"])
    # The standard library writes integers of any size, as a careless producer might.
    raw = json.dumps(payload).encode()
    if change == "duplicate_key":
        raw = raw.replace(b'"revision": 1', b'"revision": 7, "revision": 1')
    return raw


@pytest.mark.parametrize(
    "change",
    [
        "as_sent",
        "no_schema_version",
        "no_message_type",
        "exit_poll_type",
        "other_election",
        f"person_id={2**64 - 1}",  # the largest integer orjson reads exactly
        f"person_id={2**64}",  # orjson reads a float, pydantic's JSON reader an integer
        f"person_id={10**30}",
        "person_id_as_float",
        "name_in_capitals",
        "duplicate_key",
    ],
)
def test_a_declaration_read_straight_from_its_bytes_is_judged_as_the_general_path_judges_it(
    register: Register, change: str
) -> None:
    raw = _edge_case(register, change)

    def outcome(parse: Any) -> tuple[Any, ...]:
        try:
            message = parse(raw, register)
        except _Reject as rejected:
            return rejected.reason, rejected.detail
        return message, message.model_fields_set

    assert outcome(_parse) == outcome(_parse_general)


def test_the_registers_candidates_of_one_party_share_one_party_object(register: Register) -> None:
    labour = [
        candidate.party
        for seat in register
        for candidate in seat.candidates.values()
        if candidate.party.abbreviation == "Lab"
    ]
    assert len(labour) > 600
    # Labour and Labour and Co-operative are told apart by name: one object for each.
    assert len({id(party) for party in labour}) == len({party.name for party in labour}) >= 1
    assert register.parties["Lab"] in labour
