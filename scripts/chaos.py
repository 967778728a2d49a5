"""Deterministic fault injection: the night as a messy feed would deliver it, from a seed.

Every fault leaves each seat's true figures as its highest revision, so a correct processor
ends in exactly the state of the clean night; every corrupted message is labelled, and
`must_be_rejected` says which ones have to end in the dead-letter topic.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from schemas.declaration import Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll


@dataclass(frozen=True)
class Outgoing:
    """One message to send: its key, exact bytes, why it is there, and when (night time)."""

    key: str
    value: bytes
    label: str
    at: dt.datetime
    must_be_rejected: bool = False
    seat_declared: bool = False  # the message that completes a seat's true result


@dataclass(frozen=True)
class ChaosRates:
    duplicate: float = 0.05
    reorder: float = 0.05
    correction: float = 0.03
    rush: float = 0.10
    recount_closest: int = 5
    malformed: float = 0.01
    invalid: float = 0.02


def _encode(message: Declaration | ExitPoll) -> bytes:
    return message.model_dump_json().encode()


def clean_feed(messages: Sequence[tuple[str, Declaration | ExitPoll]]) -> list[Outgoing]:
    """The night as published by a perfect feed."""
    outgoing = []
    for key, message in messages:
        if isinstance(message, ExitPoll):
            outgoing.append(Outgoing(key, _encode(message), "exit_poll", message.published_at))
        else:
            outgoing.append(
                Outgoing(key, _encode(message), "result", message.declared_at, seat_declared=True)
            )
    return outgoing


def _rush(result: Declaration, revision: int) -> Declaration:
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "kind": DeclarationKind.RUSH,
            "revision": revision,
            "electorate": None,
            "valid_votes": None,
            "rejected_ballots": None,
            "candidates": [{**c.model_dump(), "votes": None} for c in result.candidates],
        }
    )


def _recount_notice(result: Declaration, revision: int, at: dt.datetime) -> Declaration:
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "kind": DeclarationKind.RECOUNT,
            "revision": revision,
            "declared_at": at,
            "electorate": None,
            "valid_votes": None,
            "rejected_ballots": None,
            "candidates": [
                {**c.model_dump(), "votes": None, "elected": False} for c in result.candidates
            ],
        }
    )


def _wrong_count(result: Declaration, revision: int, rng: random.Random) -> Declaration:
    """A plausible misreported count: votes moved between the top two, still adding up;
    sometimes enough to hand the seat to the runner-up."""
    ranked = sorted(result.candidates, key=lambda c: -(c.votes or 0))
    first, second = ranked[0], ranked[1]
    gap = (first.votes or 0) - (second.votes or 0)
    flip = rng.random() < 0.5
    moved = gap // 2 + 1 + rng.randint(0, 50) if flip else rng.randint(1, max(gap // 4, 1))
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
    return Declaration.model_validate(
        {
            **result.model_dump(),
            "revision": revision,
            "candidates": candidates,
            "tie_declared": len(leaders) > 1,
        }
    )


def _majority(result: Declaration) -> int:
    votes = sorted((c.votes or 0 for c in result.candidates), reverse=True)
    return votes[0] - (votes[1] if len(votes) > 1 else 0)


def _seat_sequence(
    result: Declaration, rng: random.Random, rates: ChaosRates, recount: bool
) -> list[Outgoing]:
    """A seat's messages: optional recount notice, rush, wrong count, then the true result."""
    key = result.constituency_id
    sent: list[Outgoing] = []
    revision = 1
    at = result.declared_at
    if recount:
        notice = _recount_notice(result, revision, at - dt.timedelta(minutes=20))
        sent.append(Outgoing(key, _encode(notice), "recount_notice", notice.declared_at))
        revision += 1
    if rng.random() < rates.rush:
        rush = _rush(result, revision)
        sent.append(Outgoing(key, _encode(rush), "rush", at))
        revision += 1
        at += dt.timedelta(minutes=rng.randint(2, 10))
    if rng.random() < rates.correction:
        wrong = _wrong_count(result, revision, rng)
        sent.append(Outgoing(key, _encode(wrong), "wrong_count", at))
        revision += 1
        true = result.model_copy(update={"revision": revision, "kind": DeclarationKind.CORRECTION})
        at += dt.timedelta(minutes=rng.randint(15, 60))
        sent.append(Outgoing(key, _encode(true), "correction", at, seat_declared=True))
        return sent
    true = result.model_copy(update={"revision": revision, "declared_at": result.declared_at})
    label = "result" if revision == 1 else "result_after_" + sent[-1].label
    sent.append(Outgoing(key, _encode(true), label, at, seat_declared=True))
    return sent


def _payload(result: Declaration) -> dict[str, Any]:
    return orjson.loads(result.model_dump_json())  # type: ignore[no-any-return]


def _invalid_variants() -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    def votes_do_not_add_up(p: dict[str, Any]) -> None:
        p["valid_votes"] += 7

    def negative_votes(p: dict[str, Any]) -> None:
        p["candidates"][-1]["votes"] = -p["candidates"][-1]["votes"] - 1

    def missing_field(p: dict[str, Any]) -> None:
        del p["declared_at"]

    def wrong_election(p: dict[str, Any]) -> None:
        p["election_id"] = "parl.2019-12-12"

    def before_polls_closed(p: dict[str, Any]) -> None:
        p["declared_at"] = "2024-07-04T21:45:00+01:00"

    def unknown_constituency(p: dict[str, Any]) -> None:
        p["constituency_id"] = "E14009999"

    def unknown_candidate(p: dict[str, Any]) -> None:
        p["candidates"][0]["person_id"] = 999_999_999

    return [
        ("votes_do_not_add_up", votes_do_not_add_up),
        ("negative_votes", negative_votes),
        ("missing_field", missing_field),
        ("wrong_election", wrong_election),
        ("before_polls_closed", before_polls_closed),
        ("unknown_constituency", unknown_constituency),
        ("unknown_candidate", unknown_candidate),
    ]


MALFORMED = [
    b'{"schema_version": "1", "message_type": "declaration", "constituency_id": ',
    b"<html><body>502 Bad Gateway</body></html>",
    b"\xff\xfe\x00garbage",
    b"",
    b"[1, 2, 3",
]


def inject_chaos(
    messages: Sequence[tuple[str, Declaration | ExitPoll]], seed: int, rates: ChaosRates
) -> list[Outgoing]:
    """The night with faults; the same seed and rates always give the same bytes in order."""
    rng = random.Random(seed)
    declarations = [m for _, m in messages if isinstance(m, Declaration)]
    closest = {
        d.constituency_id
        for d in sorted(declarations, key=lambda d: (_majority(d), d.constituency_id))[
            : rates.recount_closest
        ]
    }
    feed: list[Outgoing] = []
    for key, message in messages:
        if isinstance(message, ExitPoll):
            feed.append(Outgoing(key, _encode(message), "exit_poll", message.published_at))
            continue
        feed += _seat_sequence(message, rng, rates, message.constituency_id in closest)

    variants = _invalid_variants()
    extras: list[Outgoing] = []
    for index in range(round(rates.invalid * len(declarations))):
        target = rng.choice(declarations)
        name, spoil = variants[index % len(variants)]
        payload = _payload(target)
        spoil(payload)
        extras.append(
            Outgoing(
                target.constituency_id,
                orjson.dumps(payload),
                f"invalid:{name}",
                target.declared_at + dt.timedelta(seconds=rng.randint(1, 600)),
                must_be_rejected=True,
            )
        )
    for index in range(round(rates.malformed * len(declarations))):
        target = rng.choice(declarations)
        extras.append(
            Outgoing(
                target.constituency_id,
                MALFORMED[index % len(MALFORMED)],
                "malformed",
                target.declared_at + dt.timedelta(seconds=rng.randint(1, 600)),
                must_be_rejected=True,
            )
        )
    feed += extras
    for item in list(feed):
        if item.label != "exit_poll" and rng.random() < rates.duplicate:
            # A resend carries the same bytes; it never completes a seat a second time.
            feed.append(
                replace(
                    item,
                    label="duplicate",
                    at=item.at + dt.timedelta(seconds=rng.randint(5, 300)),
                    seat_declared=False,
                )
            )
    feed.sort(key=lambda o: o.at)  # stable: equal times keep the order built above
    # Out-of-order delivery: a message swapped with one a few places later.
    for index in range(len(feed) - 1):
        if feed[index].label != "exit_poll" and rng.random() < rates.reorder:
            other = min(index + rng.randint(1, 5), len(feed) - 1)
            if feed[other].label != "exit_poll":
                feed[index], feed[other] = feed[other], feed[index]
    return feed
