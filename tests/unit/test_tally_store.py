"""The tally store's rules on fakeredis, which runs the same Lua; the checks also run on Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from schemas.declaration import Declaration, DeclarationKind
from streams.rules.event_time import EventKey, PartitionProgress, event_key
from streams.rules.reference import ReferenceDataError
from streams.rules.tally import add_delta, seat_result
from streams.rules.validation import DEFAULT_MAX_REVISION_JUMP
from streams.store.keys import CHANGES, COUNTERS, OFFSETS, SEAT
from streams.store.tally_store import (
    Change,
    PendingApply,
    TallyStore,
    TallyStoreError,
)
from tests.store_helpers import apply_batch, change_at, changes_before, record_exit_poll
from tests.unit.ge2024 import OFFICIAL_SEATS, OFFICIAL_VALID_VOTES
from tests.unit.tally_fixtures import (
    SOUTH_WEST_NORFOLK,
    declaration_of,
    eventful_revisions,
    gains_and_losses,
    night,
    recount_notice,
    revised,
    rush,
    swapped_top_two,
    votes_by_party,
)

TOPIC = "declarations"
ELECTION = "parl.2024-07-04"

Check = Callable[[Redis, str], Awaitable[None]]


def _store(redis: Redis, prefix: str) -> TallyStore:
    return TallyStore(redis, ELECTION, prefix, night().register)


def pending(
    declarations: list[Declaration], first_offset: int = 0, partition: int = 0
) -> list[PendingApply]:
    return [PendingApply(d, TOPIC, partition, first_offset + i) for i, d in enumerate(declarations)]


async def _apply_all(store: TallyStore, items: list[PendingApply], batch: int = 97) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for start in range(0, len(items), batch):
        for outcome in await apply_batch(store, items[start : start + batch]):
            outcomes[outcome.outcome] += 1
    return outcomes


def _summed(changes: list[Change]) -> dict[str, int]:
    """The totals the changes' deltas add up to, folded the way the publisher folds them."""
    totals: dict[str, int] = {}
    for change in changes:
        add_delta(totals, change.delta)
    return totals


async def _totals_at(store: TallyStore, sequence: int) -> dict[str, int]:
    """The totals just after change `sequence`: those now, with every later change's delta
    taken back; the change log's deltas must allow it."""
    totals = _without_sequence(await store.totals())
    for change in await store.changes(after=sequence, count=100_000):
        add_delta(totals, {name: -value for name, value in change.delta.items()})
    return totals


async def _keys(redis: Redis, pattern: str) -> set[bytes]:
    return {key async for key in redis.scan_iter(match=pattern, count=1000)}


async def _seat_hashes(redis: Redis, store: TallyStore) -> dict[str, Any]:
    return {
        ons: await redis.hgetall(store.key(SEAT + ons))  # type: ignore[misc]
        for ons in night().register.constituencies
    }


async def _recount_field(redis: Redis, store: TallyStore) -> Any:
    return await redis.hget(store.key(SEAT + SOUTH_WEST_NORFOLK), "recount")  # type: ignore[misc]


def _without_sequence(totals: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in totals.items() if k != "meta:sequence"}


async def check_whole_night(redis: Redis, prefix: str) -> None:
    """All 650 in batches: the official result, one change per seat, then a redelivery."""
    store = _store(redis, prefix)
    declarations = night().declarations
    assert await _apply_all(store, pending(declarations)) == Counter(applied=650)

    state = await store.state()
    assert {p.party: p.seats for p in state.parties if p.seats} == OFFICIAL_SEATS
    assert {p.party: p.votes for p in state.parties} == dict(votes_by_party())
    gains, losses = gains_and_losses()
    assert {p.party: p.gains for p in state.parties if p.gains} == dict(gains)
    assert {p.party: p.losses for p in state.parties if p.losses} == dict(losses)
    assert state.total_votes == OFFICIAL_VALID_VOTES
    assert (state.sequence, state.seats_declared, state.majority_party) == (650, 650, "Lab")
    assert state.last_constituency_id == declarations[-1].constituency_id
    assert state.as_of == declarations[-1].declared_at

    seats = await store.seats()
    register = night().register
    assert seats == {
        d.constituency_id: seat_result(d, register.constituencies[d.constituency_id], i + 1)
        for i, d in enumerate(declarations)
    }
    assert seats[SOUTH_WEST_NORFOLK].majority == 630

    changes = await store.changes(after=0, count=1000)
    assert [c.sequence for c in changes] == list(range(1, 651))
    assert all(c.result is not None and c.result.sequence == c.sequence for c in changes)
    assert all(c.previous is None and c.exit_poll is None for c in changes)
    assert [c.result.constituency_id for c in changes if c.result] == [
        d.constituency_id for d in declarations
    ]
    totals = await store.totals()
    assert _summed(changes) == _without_sequence(totals)
    assert await _totals_at(store, 650) == _without_sequence(totals)
    assert await _totals_at(store, 0) == {}
    assert await _totals_at(store, 325) == _summed(changes[:325])

    # A redelivery of everything after a crash, at the same offsets, changes nothing.
    hashes = await _seat_hashes(redis, store)
    assert await _apply_all(store, pending(declarations), batch=200) == Counter(redelivered=650)
    assert await store.totals() == totals
    assert await redis.xlen(store.key(CHANGES)) == 650
    assert await _seat_hashes(redis, store) == hashes
    counters = await redis.hgetall(store.key(COUNTERS))  # type: ignore[misc]
    assert counters == {
        b"validation:accepted": b"650",
        b"tally:applied": b"650",
        b"kafka:redelivered": b"650",
    }


async def check_revisions(redis: Redis, prefix: str) -> None:
    """A wrong count corrected; duplicate, superseded and conflicting revisions; a recount."""
    store = _store(redis, prefix)
    ref = night().register.constituencies[SOUTH_WEST_NORFOLK]
    result = declaration_of(SOUTH_WEST_NORFOLK)
    wrong = swapped_top_two(result)  # hands the seat back to the Conservatives
    right = revised(result, 2, DeclarationKind.CORRECTION)
    outcomes = await apply_batch(store, pending([wrong, right, wrong, right]))
    assert [(o.outcome, o.sequence) for o in outcomes] == [
        ("applied", 1),
        ("applied", 2),
        ("superseded", None),
        ("duplicate", None),
    ]
    totals = await store.totals()
    assert "party:Con:seats" not in totals and totals["party:Lab:seats"] == 1  # no 0 left
    assert totals["party:Con:losses"] == 1 and totals["total:declared"] == 1
    assert totals["party:Lab:votes"] == 11847  # the old figures taken out, the new added
    assert totals["total:votes"] == result.valid_votes
    logged = await change_at(store, 2)
    assert logged is not None and logged.result is not None and logged.previous is not None
    assert logged.previous == seat_result(wrong, ref, 1)
    assert logged.result == seat_result(right, ref, 2)

    # The same revision with another count: a conflict, and nothing changes. The same
    # revision relayed again by the same source (another relay of the replay) is the same
    # announcement: a duplicate.
    other_count = revised(swapped_top_two(result), 2, DeclarationKind.CORRECTION)
    relayed = right.model_copy(update={"source": "replay:another relay"})
    conflict, duplicate = await apply_batch(store, pending([other_count, relayed], 10))
    assert (conflict.outcome, conflict.sequence, conflict.revision) == ("conflict", None, 2)
    assert (duplicate.outcome, duplicate.sequence) == ("duplicate", None)
    assert await store.totals() == totals
    assert await redis.hget(store.key(OFFSETS), f"{TOPIC}:0") == b"11"  # type: ignore[misc]
    seat_key = store.key(SEAT + SOUTH_WEST_NORFOLK)
    assert await redis.hget(seat_key, "applied_offset") == f"{TOPIC}:0:1".encode()  # type: ignore[misc]

    # A recount notice keeps the figures, exactly, and marks the seat; its result ends it.
    previous = await store.seat(SOUTH_WEST_NORFOLK)
    [marked] = await apply_batch(store, pending([recount_notice(result, 3)], 12))
    assert (marked.outcome, marked.sequence) == ("applied", 3)
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert seat == seat_result(recount_notice(result, 3), ref, 3, previous=previous)
    assert seat is not None and seat.recount and seat.majority == 630
    assert await _recount_field(redis, store) == b"1"
    assert _without_sequence(await store.totals()) == _without_sequence(totals)
    [concluded] = await apply_batch(
        store, pending([revised(result, 4, DeclarationKind.RESULT)], 13)
    )
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert concluded.sequence == 4 and seat is not None and not seat.recount
    assert await _recount_field(redis, store) == b"0"
    assert [c.sequence for c in await store.changes(after=0)] == [1, 2, 3, 4]


async def check_a_failed_step_is_applied_on_redelivery(redis: Redis, prefix: str) -> None:
    """A step Redis refuses records nothing, and holds back the rest of its partition."""
    store = _store(redis, prefix)
    first, second, third = night().declarations[:3]
    await apply_batch(store, pending([first]))
    seat_key = store.key(SEAT + first.constituency_id)
    # A stored result the recount cannot be spliced into. (A contribution that is not
    # JSON fails as well on Redis, but fakeredis lets its cjson error escape to Python.)
    good = await redis.hget(seat_key, "result")  # type: ignore[misc]
    await redis.hset(seat_key, "result", "{}")  # type: ignore[misc]
    totals = await store.totals()
    notice = recount_notice(first, 2)
    batch = [
        PendingApply(second, TOPIC, 0, 1),
        PendingApply(notice, TOPIC, 0, 2),  # fails marking the stored result
        PendingApply(third, TOPIC, 0, 3),  # would mark offset 2 as done if it ran
        PendingApply(third, TOPIC, 1, 0),  # another partition: not held back
    ]
    with pytest.raises(TallyStoreError, match="2 of 4 steps failed"):
        await apply_batch(store, batch)
    assert await redis.hget(store.key(OFFSETS), f"{TOPIC}:0") == b"1"  # type: ignore[misc]
    after = await store.totals()
    assert after["meta:sequence"] == 3 and after["total:declared"] == 3
    assert after["party:Lab:seats"] == totals["party:Lab:seats"] + 2  # Labour won both

    await redis.hset(seat_key, "result", good)  # type: ignore[misc]
    outcomes = await apply_batch(store, batch)
    assert [o.outcome for o in outcomes] == ["redelivered", "applied", "duplicate", "redelivered"]
    seat = await store.seat(first.constituency_id)
    assert seat is not None and seat.recount and seat.revision == 2 and seat.majority
    only = _store(redis, prefix + "clean:")
    await apply_batch(only, pending([first, second, third]))
    assert _without_sequence(await store.totals()) == _without_sequence(await only.totals())


async def check_out_of_order(redis: Redis, prefix: str) -> None:
    """The highest revision first: the lower ones that follow are superseded."""
    store = _store(redis, prefix)
    result = declaration_of(SOUTH_WEST_NORFOLK)
    final = revised(swapped_top_two(result), 3, DeclarationKind.CORRECTION)
    outcomes = await apply_batch(
        store, pending([final, rush(result, 1), revised(result, 2, DeclarationKind.RESULT)])
    )
    assert [o.outcome for o in outcomes] == ["applied", "superseded", "superseded"]
    only_final = _store(redis, prefix + "alone:")
    await apply_batch(only_final, pending([final]))
    assert await store.totals() == await only_final.totals()
    assert await store.seat(SOUTH_WEST_NORFOLK) == await only_final.seat(SOUTH_WEST_NORFOLK)


async def check_recount_before_any_result(redis: Redis, prefix: str) -> None:
    """Recounts announced before any figures: nothing declared, and the seat stays readable."""
    store = _store(redis, prefix)
    result = declaration_of(SOUTH_WEST_NORFOLK)
    notices = [recount_notice(result, 1), recount_notice(result, 2)]
    await apply_batch(store, pending(notices))
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert seat is not None and seat.recount and seat.figures_pending
    assert seat.winner is None and seat.candidates == [] and seat.revision == 2
    state = await store.state()
    assert state.seats_declared == 0 and state.sequence == 2
    [change] = await store.changes(after=1)
    assert change.previous is not None and change.previous.revision == 1
    await apply_batch(store, pending([revised(result, 3, DeclarationKind.RESULT)], 2))
    assert (await store.state()).seats_declared == 1


async def check_two_appliers_equal_one(redis: Redis, prefix: str) -> None:
    """Two workers on disjoint partitions, concurrently, reach the single worker's tallies."""
    declarations = night().declarations
    single = _store(redis, prefix + "single:")
    await _apply_all(single, pending(declarations))
    first, second = _store(redis, prefix + "pair:"), _store(redis, prefix + "pair:")
    even = pending(declarations[0::2], partition=0)
    odd = pending(declarations[1::2], partition=1)
    outcomes = await asyncio.gather(_apply_all(first, even, 25), _apply_all(second, odd, 25))
    assert sum(outcomes, Counter()) == Counter(applied=650)
    assert await first.totals() == await single.totals()
    assert await first.seats() == await second.seats()
    changes = await first.changes(after=0, count=1000)
    assert [c.sequence for c in changes] == list(range(1, 651))
    assert _summed(changes) == _without_sequence(await single.totals())


async def check_exit_poll(redis: Redis, prefix: str) -> None:
    store = _store(redis, prefix)
    poll = night().exit_poll
    first = await record_exit_poll(store, poll, TOPIC, 3, 0)
    assert (first.outcome, first.sequence) == ("applied", 1)
    assert (await record_exit_poll(store, poll, TOPIC, 3, 0)).outcome == "redelivered"
    again = await record_exit_poll(store, poll, TOPIC, 3, 1)
    assert (again.outcome, again.sequence) == ("duplicate", None)
    assert await store.exit_poll() == poll
    declaration = night().declarations[0]
    [applied] = await apply_batch(store, pending([declaration], partition=0))
    assert applied.sequence == 2
    exit_change, seat_change = await store.changes(after=0)
    assert (exit_change.sequence, exit_change.exit_poll, exit_change.result) == (1, poll, None)
    assert seat_change.result is not None and seat_change.result.sequence == 2
    state = await store.state()
    assert state.sequence == 2 and state.last_constituency_id == declaration.constituency_id


async def check_change_log_paging(redis: Redis, prefix: str) -> None:
    store = _store(redis, prefix)
    await apply_batch(store, pending(night().declarations[:10]))
    assert [c.sequence for c in await store.changes(after=5, count=3)] == [6, 7, 8]
    assert await store.changes(after=10) == []
    seventh = await change_at(store, 7)
    assert seventh is not None and seventh.result is not None
    assert seventh.result.constituency_id == night().declarations[6].constituency_id
    assert await change_at(store, 11) is None
    assert [c.sequence for c in await changes_before(store, 4, 10)] == [3, 2, 1]


async def check_elections_side_by_side(redis: Redis, prefix: str) -> None:
    """Two elections (and a rehearsal of one) share a Redis; a reset removes only its own."""
    other_register = dataclasses.replace(night().register, election_id="parl.2029-05-03")
    live = _store(redis, prefix)
    rehearsal = _store(redis, prefix + "rehearsal:")
    other = TallyStore(redis, "parl.2029-05-03", prefix, other_register)
    await apply_batch(live, pending(night().declarations[:5]))
    await apply_batch(rehearsal, pending(night().declarations[:2]))
    await apply_batch(other, pending(night().declarations[:3]))
    await redis.set(prefix + "unrelated", "1")
    assert (await live.state()).seats_declared == 5
    assert (await rehearsal.state()).seats_declared == 2
    assert (await other.state()).seats_declared == 3
    assert all(key.startswith(live.ns.encode()) for key in await _keys(redis, live.ns + "*"))

    live_keys = await _keys(redis, live.ns + "*")
    rehearsal_keys = await _keys(redis, rehearsal.ns + "*")
    assert await rehearsal.reset() == len(rehearsal_keys) > 0
    assert (await rehearsal.state()).seats_declared == 0
    assert await _keys(redis, live.ns + "*") == live_keys
    removed = await other.reset()
    assert removed == 3 + 7  # three seats, seats, totals, offsets, clocks, as-of, changes, counters
    assert await _keys(redis, other.ns + "*") == set()
    assert (await live.state()).seats_declared == 5
    assert await redis.get(prefix + "unrelated") == b"1"


async def check_clocks_and_as_of(redis: Redis, prefix: str) -> None:
    """Each partition's clock is its last timed message; "as of" never goes back."""
    store = _store(redis, prefix)
    first, second, third = night().declarations[:3]
    await apply_batch(store, pending([first, third], partition=0) + pending([second], 0, 1))
    read, last = await store.partitions_read(TOPIC)
    assert last == 3  # every change those offsets made is in the log up to here
    assert {p: (r.applied, r.clock) for p, r in read.items()} == {
        0: (1, _key(third)),
        1: (0, _key(second)),
    }
    assert (await store.state()).as_of == third.declared_at
    # A correction dated before the latest declaration moves the clock of its partition
    # (the last message read there) but not "as of".
    earlier = revised(first, 2, DeclarationKind.CORRECTION)
    assert earlier.declared_at < third.declared_at
    await apply_batch(store, pending([earlier], 5, partition=1))
    read, last = await store.partitions_read(TOPIC)
    assert read[1] == PartitionProgress(5, None, _key(earlier)) and last == 4
    assert (await store.state()).as_of == third.declared_at
    assert await store.partitions_read("another-topic") == ({}, 4)


async def check_revision_jump(redis: Redis, prefix: str) -> None:
    """A revision far past its seat's is recorded, not applied: the seat keeps its figures and
    takes its genuine corrections, one exactly the limit ahead included."""
    store = _store(redis, prefix)
    jump = DEFAULT_MAX_REVISION_JUMP
    result = declaration_of(SOUTH_WEST_NORFOLK)
    await apply_batch(store, pending([result]))
    seat, totals = await store.seat(SOUTH_WEST_NORFOLK), await store.totals()
    typo = revised(swapped_top_two(result), 1 + jump + 1, DeclarationKind.CORRECTION)
    [refused] = await apply_batch(store, pending([typo], 1))
    assert (refused.outcome, refused.sequence, refused.current_revision) == (
        "revision_jump",
        None,
        1,
    )
    assert await store.seat(SOUTH_WEST_NORFOLK) == seat
    assert await store.totals() == totals
    assert await redis.xlen(store.key(CHANGES)) == 1
    # Its offset is recorded as a rejected message's is: delivered again, it is a redelivery.
    assert await redis.hget(store.key(OFFSETS), f"{TOPIC}:0") == b"1"  # type: ignore[misc]
    [again] = await apply_batch(store, pending([typo], 1))
    assert again.outcome == "redelivered"

    correction = revised(swapped_top_two(result), 2, DeclarationKind.CORRECTION)
    at_the_limit = revised(result, 2 + jump, DeclarationKind.CORRECTION)
    outcomes = await apply_batch(store, pending([correction, at_the_limit], 2))
    assert [(o.outcome, o.sequence) for o in outcomes] == [("applied", 2), ("applied", 3)]
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert seat is not None and seat.revision == 2 + jump and seat.majority == 630

    # A seat's first declaration is a jump from 0.
    first = night().declarations[0]
    assert first.constituency_id != SOUTH_WEST_NORFOLK
    from_nothing = revised(first, jump + 1, DeclarationKind.RESULT)
    [refused] = await apply_batch(store, pending([from_nothing], partition=1))
    assert (refused.outcome, refused.current_revision) == ("revision_jump", 0)
    assert await store.seat(first.constituency_id) is None
    [exactly] = await apply_batch(
        store, pending([revised(first, jump, DeclarationKind.RESULT)], 1, partition=1)
    )
    assert (exactly.outcome, exactly.sequence) == ("applied", 4)
    assert await store.counters() == {
        "validation:accepted": 6,
        "tally:applied": 4,
        "tally:revision_jump": 2,
        "kafka:redelivered": 1,
    }


def _key(declaration: Declaration) -> EventKey:
    ref = night().register.constituencies[declaration.constituency_id]
    return event_key(
        declaration.declared_at, ref.name, declaration.constituency_id, declaration.revision
    )


CHECKS: list[Check] = [
    check_clocks_and_as_of,
    check_whole_night,
    check_revisions,
    check_a_failed_step_is_applied_on_redelivery,
    check_out_of_order,
    check_recount_before_any_result,
    check_two_appliers_equal_one,
    check_exit_poll,
    check_change_log_paging,
    check_elections_side_by_side,
    check_revision_jump,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_tally_store(check: Check) -> None:
    await check(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), "unit:")


async def test_a_batch_is_one_round_trip() -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = _store(redis, "")
    pipelines: list[dict[str, Any]] = []
    make_pipeline = redis.pipeline

    def pipeline(**kwargs: Any) -> Any:
        pipelines.append(kwargs)
        return make_pipeline(**kwargs)

    async def no_single_commands(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a command outside the pipeline: {args[0]}")

    redis.pipeline = pipeline  # type: ignore[method-assign, assignment]
    redis.execute_command = no_single_commands  # type: ignore[method-assign]
    outcomes = await apply_batch(store, pending(night().declarations[:200]))
    assert len(outcomes) == 200 and pipelines == [{"transaction": False}]


async def test_a_flushed_script_cache_costs_nothing() -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = _store(redis, "")
    await apply_batch(store, pending(night().declarations[:1]))
    await redis.script_flush()  # as after a Redis restart
    [outcome] = await apply_batch(store, pending(night().declarations[1:2], 1))
    assert outcome.outcome == "applied" and outcome.sequence == 2


async def test_the_revision_jump_is_the_callers() -> None:
    """The limit reaches Lua from the caller (Settings.max_revision_jump), per batch."""
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = _store(redis, "")
    result = declaration_of(SOUTH_WEST_NORFOLK)
    two_ahead = revised(result, 3, DeclarationKind.CORRECTION)
    outcomes = await apply_batch(store, pending([result, two_ahead]), max_revision_jump=1)
    assert [(o.outcome, o.current_revision) for o in outcomes] == [
        ("applied", None),
        ("revision_jump", 1),
    ]
    [applied] = await apply_batch(store, pending([two_ahead], 2), max_revision_jump=2)
    assert applied.outcome == "applied"
    with pytest.raises(ValueError, match="at least 1"):
        await apply_batch(store, pending([result], 3), max_revision_jump=0)


async def test_reference_data_of_another_election_is_refused() -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    store = TallyStore(redis, "parl.2029-05-03", "", night().register)
    with pytest.raises(ReferenceDataError, match=r"reference data of parl\.2024-07-04"):
        await apply_batch(store, pending(night().declarations[:1]))


async def _deliver(seat_index: int, deliveries: list[int], batch: int) -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    revisions = eventful_revisions(night().declarations[seat_index])
    ons_id = revisions[0].constituency_id
    store, alone = _store(redis, "delivered:"), _store(redis, "alone:")
    items = pending([revisions[index] for index in deliveries])
    applied = 0
    for start in range(0, len(items), batch):
        outcomes = await apply_batch(store, items[start : start + batch])
        applied += sum(o.outcome == "applied" for o in outcomes)
    await apply_batch(alone, pending(revisions[-1:]))
    totals = await store.totals()
    assert totals["meta:sequence"] == applied
    assert _without_sequence(totals) == _without_sequence(await alone.totals())
    seat, only = await store.seat(ons_id), await alone.seat(ons_id)
    assert seat is not None and only is not None and not seat.recount
    assert seat == only.model_copy(update={"sequence": applied})


@settings(max_examples=60, deadline=None)
@given(
    seat_index=st.integers(0, 649),
    deliveries=st.lists(st.integers(0, 3), max_size=7).flatmap(
        lambda others: st.permutations([*others, 3])
    ),
    batch=st.integers(1, 4),
)
def test_any_delivery_of_a_seats_revisions_stores_what_the_highest_alone_stores(
    seat_index: int, deliveries: list[int], batch: int
) -> None:
    """Duplicates, stale and reordered revisions in any batching: the highest one stands."""
    asyncio.run(_deliver(seat_index, deliveries, batch))


async def _everything(redis: Redis, store: TallyStore) -> dict[str, Any]:
    """Every key of the store's election and what it holds, the namespace taken off."""
    held: dict[str, Any] = {}
    async for raw in redis.scan_iter(match=store.ns + "*", count=1000):
        key = raw.decode()[len(store.ns) :]
        kind = (await redis.type(raw)).decode()
        if kind == "hash":
            held[key] = await redis.hgetall(raw)  # type: ignore[misc]
        elif kind == "set":
            held[key] = await redis.smembers(raw)  # type: ignore[misc]
        elif kind == "stream":
            held[key] = await redis.xrange(raw)
        else:
            held[key] = await redis.get(raw)
    return held


async def _batched(seats: list[int], order: list[int], batch: int) -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    revisions = [r for seat in seats for r in eventful_revisions(night().declarations[seat])]
    # A partition per seat, its offsets in the order the feed sent the revisions, and the
    # first few messages delivered again at the end, as after a crash.
    sent: Counter[int] = Counter()
    items = []
    for at in order:
        items.append(PendingApply(revisions[at], TOPIC, at // 4, sent[at // 4]))
        sent[at // 4] += 1
    items += items[:batch]
    one_by_one, batched = _store(redis, "one:"), _store(redis, "batched:")
    for item in items:
        await apply_batch(one_by_one, [item])
    for start in range(0, len(items), batch):
        await apply_batch(batched, items[start : start + batch])
    assert await _everything(redis, batched) == await _everything(redis, one_by_one)


@settings(max_examples=40, deadline=None)
@given(
    seats=st.lists(st.integers(0, 649), min_size=1, max_size=3, unique=True),
    data=st.data(),
    batch=st.integers(2, 12),
)
def test_a_batch_leaves_redis_as_its_messages_one_at_a_time_do(
    seats: list[int], data: st.DataObject, batch: int
) -> None:
    """The apply script keeps its counters, offsets, clocks, totals and sequence until the
    batch ends: nothing of that may show, whatever the batch holds."""
    order = data.draw(st.permutations(range(4 * len(seats))))
    asyncio.run(_batched(seats, order, batch))
