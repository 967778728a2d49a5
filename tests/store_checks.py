"""Checks of the tally store shared by the fakeredis unit tests and the real-Redis ones."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from schemas.declaration import Declaration, DeclarationKind
from scripts.night_builder import Night
from streams.tally_store import PendingApply, TallyStore
from tests.unit.ge2024 import OFFICIAL_SEATS, OFFICIAL_VALID_VOTES

TOPIC = "declarations-accepted"

Check = Callable[[Redis, str, Night], Awaitable[None]]


def pending(declarations: list[Declaration], first_offset: int = 0) -> list[PendingApply]:
    return [PendingApply(d, TOPIC, 0, first_offset + i) for i, d in enumerate(declarations)]


async def apply_night(store: TallyStore, night: Night, batch: int = 100) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    items = pending(night.declarations)
    for start in range(0, len(items), batch):
        for outcome in await store.apply_batch(items[start : start + batch], night.register):
            outcomes[outcome.outcome] += 1
    return outcomes


async def check_whole_night(redis: Redis, prefix: str, night: Night) -> None:
    store = TallyStore(redis, night.register.election_id, prefix)
    assert await apply_night(store, night) == Counter(applied=650)
    state = await store.state(night.register)
    assert {p.party: p.seats for p in state.parties if p.seats} == OFFICIAL_SEATS
    assert state.total_votes == OFFICIAL_VALID_VOTES
    assert state.sequence == 650
    seats = await store.seats()
    assert len(seats) == 650
    assert seats["E14001497"].majority == 630
    changes = await store.changes(after=0, count=1000)
    assert [c.sequence for c in changes] == list(range(1, 651))
    # A redelivery of everything after a crash changes nothing.
    before = await store.totals()
    outcomes = await apply_night(store, night)
    assert outcomes == Counter(redelivered=650)
    assert await store.totals() == before


async def check_revisions(redis: Redis, prefix: str, night: Night) -> None:
    store = TallyStore(redis, night.register.election_id, prefix)
    result = next(d for d in night.declarations if d.constituency_name == "South West Norfolk")
    ranked = sorted(result.candidates, key=lambda c: -(c.votes or 0))
    # A wrong first count that hands the seat back to the Conservatives.
    swapped = {ranked[0].person_id: ranked[1].votes, ranked[1].person_id: ranked[0].votes}
    wrong = result.model_copy(
        update={
            "candidates": [
                c.model_copy(
                    update={
                        "votes": swapped.get(c.person_id, c.votes),
                        "elected": c.person_id == ranked[1].person_id,
                    }
                )
                for c in result.candidates
            ]
        }
    )
    true = result.model_copy(update={"revision": 2, "kind": DeclarationKind.CORRECTION})
    outcomes = await store.apply_batch(pending([wrong, true, wrong, true], 0), night.register)
    assert [o.outcome for o in outcomes] == ["applied", "applied", "superseded", "duplicate"]
    state = await store.state(night.register)
    assert {p.party: p.seats for p in state.parties if p.seats} == {"Lab": 1}
    assert {p.party: p.losses for p in state.parties if p.losses} == {"Con": 1}
    seat = await store.seat(result.constituency_id)
    assert seat is not None and seat.revision == 2 and seat.majority == 630
    # Same revision, other content: a conflict, nothing changes.
    conflicting = true.model_copy(update={"source": "another feed"})
    [outcome] = await store.apply_batch(pending([conflicting], 10), night.register)
    assert outcome.outcome == "conflict"
    # A recount notice keeps the figures and marks the seat.
    notice = result.model_copy(
        update={
            "revision": 3,
            "kind": DeclarationKind.RECOUNT,
            "candidates": [c.model_copy(update={"elected": False}) for c in result.candidates],
        }
    )
    [outcome] = await store.apply_batch(pending([notice], 11), night.register)
    assert outcome.outcome == "applied"
    seat = await store.seat(result.constituency_id)
    assert seat is not None and seat.recount and seat.winning_party == "Lab"
    assert (await store.state(night.register)).total_votes == result.valid_votes


async def check_two_stores_share_one_election(redis: Redis, prefix: str, night: Night) -> None:
    """Two workers applying disjoint partitions concurrently reach the single-worker totals."""
    first = TallyStore(redis, night.register.election_id, prefix)
    second = TallyStore(redis, night.register.election_id, prefix)
    even = [PendingApply(d, TOPIC, 0, i) for i, d in enumerate(night.declarations[0::2])]
    odd = [PendingApply(d, TOPIC, 1, i) for i, d in enumerate(night.declarations[1::2])]

    async def run(store: TallyStore, items: list[PendingApply]) -> None:
        for start in range(0, len(items), 50):
            await store.apply_batch(items[start : start + 50], night.register)

    await asyncio.gather(run(first, even), run(second, odd))
    state = await first.state(night.register)
    assert {p.party: p.seats for p in state.parties if p.seats} == OFFICIAL_SEATS
    assert state.total_votes == OFFICIAL_VALID_VOTES


async def check_elections_side_by_side(redis: Redis, prefix: str, night: Night) -> None:
    live = TallyStore(redis, night.register.election_id, prefix)
    rehearsal = TallyStore(redis, night.register.election_id, prefix + "rehearsal:")
    await live.apply_batch(pending(night.declarations[:5]), night.register)
    await rehearsal.apply_batch(pending(night.declarations[:2]), night.register)
    assert (await live.state(night.register)).seats_declared == 5
    assert (await rehearsal.state(night.register)).seats_declared == 2
    assert await rehearsal.reset() > 0
    assert (await rehearsal.state(night.register)).seats_declared == 0
    assert (await live.state(night.register)).seats_declared == 5
