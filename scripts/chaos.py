"""Deterministic fault injection: the night as a messy feed would deliver it, from a seed.

Faults, each with its own rate (see `ChaosRates`):

- duplicates: a valid message sent again, byte for byte, seconds to minutes later;
- out-of-order delivery: a message held back past up to `REORDER_WINDOW` later ones;
- late corrections: a wrong count first (votes moved between the top two, still adding up,
  sometimes enough to flip the winner), then the true figures as `kind=correction`;
- rush before result: a `rush` naming the winner only, then the full result;
- recount notices for the closest seats (smallest majority): `kind=recount`, no one elected,
  before their result;
- malformed bytes (`malformed:*`) and schema-invalid messages (`invalid:*`).

Invariant: each seat's true figures are its highest revision, and no two messages that
validation accepts share a seat and revision with different content, so a correct processor
ends in the same final state with or without chaos (only `kind` differs, `correction` where
the clean night says `result`). Labels in `MUST_BE_REJECTED` (and only those) must end in
the dead-letter topic, for the reason `EXPECTED_REJECTION` gives.

Randomness: one `random.Random` per fault, seeded from the seed and the fault's name, so the
same seed and rates always give byte-identical output, and changing one rate leaves the
other faults where they were.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from schemas.declaration import Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll
from schemas.rejection import RejectionReason
from scripts.night_builder import Night

Message = Declaration | ExitPoll
Keyed = Sequence[tuple[str, Message]]

# Labels: what each message is on the night.
EXIT_POLL = "exit_poll"
RESULT = "result"  # a seat's true figures, revision 1
RUSH = "rush"
RECOUNT_NOTICE = "recount_notice"
WRONG_COUNT = "wrong_count"  # plausible but wrong figures, corrected later
CORRECTION = "correction"  # the true figures replacing a wrong count
DUPLICATE = "duplicate"
RESULT_AFTER_RUSH = "result_after_rush"
RESULT_AFTER_RECOUNT = "result_after_recount_notice"

REORDER_WINDOW = 5  # the most later messages a held-back message lets past


@dataclass(frozen=True)
class Outgoing:
    """One message to send: key, exact bytes, what it is, and when on the night's clock."""

    key: str
    value: bytes
    label: str
    at: dt.datetime
    kind: str = RESULT  # the wire kind (exit_poll, result, rush...), or malformed, invalid
    seat_declared: bool = False  # this message carries the seat's true, final figures
    reordered: bool = False  # held back past later messages

    @property
    def must_be_rejected(self) -> bool:
        return self.label in MUST_BE_REJECTED

    @property
    def expected_rejection(self) -> RejectionReason | None:
        return EXPECTED_REJECTION.get(self.label)


@dataclass(frozen=True)
class ChaosRates:
    """Probability of each fault per seat (duplicate, reorder: per message); counts otherwise.

    `malformed` and `invalid` are per seat too: 0.02 of 650 seats is 13 invalid messages.
    """

    duplicate: float = 0.05
    reorder: float = 0.05
    correction: float = 0.03
    rush: float = 0.10
    recount_closest: int = 5
    malformed: float = 0.01
    invalid: float = 0.02

    def __post_init__(self) -> None:
        for name in ("duplicate", "reorder", "correction", "rush", "malformed", "invalid"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} rate must be between 0 and 1, not {value}")
        if self.recount_closest < 0:
            raise ValueError(f"recount_closest must not be negative, not {self.recount_closest}")

    @classmethod
    def none(cls) -> ChaosRates:
        return cls(0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0)


def _encode(message: Message) -> bytes:
    return message.model_dump_json().encode()


def _keyed(night: Night | Keyed) -> Keyed:
    return night.messages() if isinstance(night, Night) else night


def clean_feed(night: Night | Keyed) -> list[Outgoing]:
    """The night as a perfect feed publishes it."""
    feed = []
    for key, message in _keyed(night):
        if isinstance(message, ExitPoll):
            feed.append(Outgoing(key, _encode(message), EXIT_POLL, message.published_at, EXIT_POLL))
        else:
            feed.append(
                Outgoing(
                    key, _encode(message), RESULT, message.declared_at, RESULT, seat_declared=True
                )
            )
    return feed


def _without_figures(result: Declaration, kind: DeclarationKind, revision: int) -> Declaration:
    payload = result.model_dump()
    payload.update(
        kind=kind,
        revision=revision,
        electorate=None,
        valid_votes=None,
        rejected_ballots=None,
        candidates=[
            # A recount notice elects no one; a rush names the winner only.
            {**c, "votes": None, "elected": c["elected"] and kind is DeclarationKind.RUSH}
            for c in payload["candidates"]
        ],
    )
    return Declaration.model_validate(payload)


def wrong_count(result: Declaration, revision: int, rng: random.Random) -> Declaration:
    """A misreported count: votes moved between the top two, still adding up; half the time
    enough to hand the seat to the runner-up."""
    ranked = sorted(result.candidates, key=lambda c: -(c.votes or 0))
    first, second = ranked[0], ranked[1]
    gap = (first.votes or 0) - (second.votes or 0)
    if rng.random() < 0.5:
        moved = gap // 2 + 1 + rng.randint(0, 50)  # more than half the gap: a flip
    else:
        moved = rng.randint(1, max(gap // 4, 1))
    moved = min(moved, first.votes or 0)
    votes = {
        first.person_id: (first.votes or 0) - moved,
        second.person_id: (second.votes or 0) + moved,
    }
    candidates = [
        {**c.model_dump(), "votes": votes.get(c.person_id, c.votes)} for c in result.candidates
    ]
    top = max(c["votes"] for c in candidates)
    leaders = [c for c in candidates if c["votes"] == top]
    for candidate in candidates:
        candidate["elected"] = candidate is leaders[0]
    candidates.sort(key=lambda c: -c["votes"])
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "revision": revision,
            "candidates": candidates,
            "tie_declared": len(leaders) > 1,
        }
    )


def majority(result: Declaration) -> int:
    votes = sorted((c.votes or 0 for c in result.candidates), reverse=True)
    return votes[0] - (votes[1] if len(votes) > 1 else 0)


def closest_seats(declarations: Sequence[Declaration], count: int) -> list[str]:
    """ONS ids of the `count` seats with the smallest majorities (ties by ONS id)."""
    ranked = sorted(declarations, key=lambda d: (majority(d), d.constituency_id))
    return [d.constituency_id for d in ranked[:count]]


@dataclass
class _Streams:
    """One generator per fault, so one rate's draws never move another fault."""

    seed: int
    by_fault: dict[str, random.Random] = field(default_factory=dict)

    def __getitem__(self, fault: str) -> random.Random:
        if fault not in self.by_fault:
            self.by_fault[fault] = random.Random(f"{self.seed}:{fault}")
        return self.by_fault[fault]


def _seat_sequence(
    result: Declaration, streams: _Streams, rates: ChaosRates, recount: bool
) -> list[Outgoing]:
    """A seat's messages: recount notice?, rush?, wrong count?, then its true figures."""
    key, at = result.constituency_id, result.declared_at
    sent: list[Outgoing] = []
    revision = 1
    if recount:
        notice_at = at - dt.timedelta(minutes=streams["recount"].randint(15, 45))
        notice = _without_figures(result, DeclarationKind.RECOUNT, revision)
        notice = notice.model_copy(update={"declared_at": notice_at})
        sent.append(Outgoing(key, _encode(notice), RECOUNT_NOTICE, notice_at, "recount"))
        revision += 1
    if streams["rush"].random() < rates.rush:
        rush = _without_figures(result, DeclarationKind.RUSH, revision)
        sent.append(Outgoing(key, _encode(rush), RUSH, at, "rush"))
        revision += 1
        at += dt.timedelta(minutes=streams["rush"].randint(2, 10))
    # Figures keep the clean night's declared_at whenever they are sent, so the final state
    # is the clean night's to the second.
    if streams["correction"].random() < rates.correction:
        wrong = wrong_count(result, revision, streams["correction"])
        sent.append(Outgoing(key, _encode(wrong), WRONG_COUNT, at, "result"))
        at += dt.timedelta(minutes=streams["correction"].randint(15, 60))
        true = result.model_copy(
            update={"revision": revision + 1, "kind": DeclarationKind.CORRECTION}
        )
        sent.append(Outgoing(key, _encode(true), CORRECTION, at, "correction", seat_declared=True))
        return sent
    label = {RUSH: RESULT_AFTER_RUSH, RECOUNT_NOTICE: RESULT_AFTER_RECOUNT}.get(
        sent[-1].label if sent else "", RESULT
    )
    true = result.model_copy(update={"revision": revision})
    sent.append(Outgoing(key, _encode(true), label, at, "result", seat_declared=True))
    return sent


Spoil = Callable[[dict[str, Any]], None]


def _set(path: tuple[str | int, ...], value: Any) -> Spoil:
    def spoil(payload: dict[str, Any]) -> None:
        target: Any = payload
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return spoil


def _add_to_valid_votes(payload: dict[str, Any]) -> None:
    payload["valid_votes"] += 7


def _negative_votes(payload: dict[str, Any]) -> None:
    last = payload["candidates"][-1]
    last["votes"] = -(last["votes"] or 0) - 1


def _drop_declared_at(payload: dict[str, Any]) -> None:
    del payload["declared_at"]


# Schema-invalid messages: a spoiled copy of a seat's true result, and the reason validation
# must give. The first seven are the brief's list; an unknown schema version is an eighth.
INVALID: dict[str, tuple[Spoil, RejectionReason]] = {
    "votes_do_not_add_up": (_add_to_valid_votes, RejectionReason.FIGURES_DO_NOT_ADD_UP),
    "negative_votes": (_negative_votes, RejectionReason.SCHEMA_VIOLATION),
    "missing_field": (_drop_declared_at, RejectionReason.SCHEMA_VIOLATION),
    "wrong_election": (_set(("election_id",), "parl.2019-12-12"), RejectionReason.WRONG_ELECTION),
    "declared_before_polls_closed": (
        _set(("declared_at",), "2024-07-04T21:45:00+01:00"),
        RejectionReason.DECLARED_BEFORE_POLLS_CLOSED,
    ),
    "unknown_constituency": (
        _set(("constituency_id",), "E14009999"),
        RejectionReason.UNKNOWN_CONSTITUENCY,
    ),
    "unknown_candidate": (
        _set(("candidates", 0, "person_id"), 999_999_999),
        RejectionReason.UNKNOWN_CANDIDATE,
    ),
    "unknown_schema_version": (
        _set(("schema_version",), "99"),
        RejectionReason.UNSUPPORTED_SCHEMA_VERSION,
    ),
}

# Bytes that are not JSON at all, made from a seat's true result where that is realistic.
MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda good: good[: len(good) // 2],
    "trailing_garbage": lambda good: good + b"}\x00",
    "html_error_page": lambda good: b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "not_utf8": lambda good: b"\xff\xfe" + good[:40],
    "empty": lambda good: b"",
}

EXPECTED_REJECTION: dict[str, RejectionReason] = {
    **{f"invalid:{name}": reason for name, (_, reason) in INVALID.items()},
    **{f"malformed:{name}": RejectionReason.MALFORMED_JSON for name in MALFORMED},
}
# Every label that must end in the dead-letter topic; no other label may.
MUST_BE_REJECTED = frozenset(EXPECTED_REJECTION)


def _corrupted(
    declarations: Sequence[Declaration], rates: ChaosRates, streams: _Streams
) -> list[Outgoing]:
    """Invalid and malformed messages, each variant in turn, aimed at random seats."""
    extras: list[Outgoing] = []
    rng = streams["invalid"]
    invalid = list(INVALID.items())
    for index in range(round(rates.invalid * len(declarations))):
        target = rng.choice(declarations)
        name, (spoil, _) = invalid[index % len(invalid)]
        payload = orjson.loads(_encode(target))
        spoil(payload)
        at = target.declared_at + dt.timedelta(seconds=rng.randint(1, 600))
        extras.append(
            Outgoing(
                target.constituency_id, orjson.dumps(payload), f"invalid:{name}", at, "invalid"
            )
        )
    rng = streams["malformed"]
    malformed = list(MALFORMED.items())
    for index in range(round(rates.malformed * len(declarations))):
        target = rng.choice(declarations)
        name, make = malformed[index % len(malformed)]
        at = target.declared_at + dt.timedelta(seconds=rng.randint(1, 600))
        extras.append(
            Outgoing(
                target.constituency_id, make(_encode(target)), f"malformed:{name}", at, "malformed"
            )
        )
    return extras


def _reorder(feed: list[Outgoing], rate: float, rng: random.Random) -> list[Outgoing]:
    """Hold some messages back past up to REORDER_WINDOW later ones; send times stay in order
    (a held-back message goes when it finally goes), its payload keeps its own times."""
    place: list[tuple[float, int]] = []
    for index, item in enumerate(feed):
        held = item.label != EXIT_POLL and rng.random() < rate
        place.append((index + rng.randint(1, REORDER_WINDOW) + 0.5 if held else index, index))
    reordered: list[Outgoing] = []
    for position, index in sorted(place):
        item = feed[index]
        if position != index:
            item = replace(item, reordered=True)
        if reordered and item.at < reordered[-1].at:
            item = replace(item, at=reordered[-1].at)
        reordered.append(item)
    return reordered


def inject_chaos(
    night: Night | Keyed, seed: int, rates: ChaosRates | None = None
) -> list[Outgoing]:
    """The night with faults, in send order; same seed and rates, byte-identical output."""
    rates = rates or ChaosRates()
    streams = _Streams(seed)
    messages = _keyed(night)
    declarations = [m for _, m in messages if isinstance(m, Declaration)]
    recount = set(closest_seats(declarations, rates.recount_closest))
    feed: list[Outgoing] = []
    for key, message in messages:
        if isinstance(message, ExitPoll):
            feed.append(Outgoing(key, _encode(message), EXIT_POLL, message.published_at, EXIT_POLL))
        else:
            feed += _seat_sequence(message, streams, rates, message.constituency_id in recount)
    feed += _corrupted(declarations, rates, streams)
    rng = streams["duplicate"]
    for item in list(feed):
        # Only valid messages are resent, so a label alone says whether it must be rejected.
        if item.label != EXIT_POLL and not item.must_be_rejected and rng.random() < rates.duplicate:
            later = item.at + dt.timedelta(seconds=rng.randint(5, 300))
            feed.append(replace(item, label=DUPLICATE, at=later, seat_declared=False))
    feed.sort(key=lambda o: o.at)  # stable: equal times keep the order built above
    return _reorder(feed, rates.reorder, streams["reorder"])
