"""Test-only ways into the store: the apply step per kind of message, one change read or
announced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.exit_poll import ExitPoll
from streams.rules.reference import Register
from streams.rules.validation import DEFAULT_MAX_REVISION_JUMP
from streams.store.outbox import Outbox, Output
from streams.store.tally_store import (
    Change,
    PendingApply,
    PendingExitPoll,
    TallyStore,
)


@dataclass(frozen=True)
class ApplyOutcome:
    outcome: str  # applied | duplicate | superseded | conflict | revision_jump | redelivered
    sequence: int | None  # the change's sequence when applied
    constituency_id: str
    revision: int
    current_revision: int | None = None  # the seat's revision, for a revision_jump


@dataclass(frozen=True)
class ExitPollOutcome:
    outcome: str  # applied | duplicate | redelivered
    sequence: int | None


async def apply_batch(
    store: TallyStore,
    items: Sequence[PendingApply],
    register: Register | None = None,
    max_revision_jump: int = DEFAULT_MAX_REVISION_JUMP,
) -> list[ApplyOutcome]:
    """Apply a batch of accepted declarations in one round trip (TallyStore.apply_steps)."""
    outcomes = await store.apply_steps(items, register, max_revision_jump=max_revision_jump)
    return [
        ApplyOutcome(
            outcome=outcome.outcome,
            sequence=outcome.sequence,
            constituency_id=item.declaration.constituency_id,
            revision=item.declaration.revision,
            current_revision=outcome.current_revision,
        )
        for item, outcome in zip(items, outcomes, strict=True)
    ]


async def record_exit_poll(
    store: TallyStore, exit_poll: ExitPoll, topic: str, partition: int, offset: int
) -> ExitPollOutcome:
    """Log the exit poll once per election: applied, then duplicate; or redelivered."""
    [outcome] = await store.apply_steps([PendingExitPoll(exit_poll, topic, partition, offset)])
    return ExitPollOutcome(outcome.outcome.removeprefix("exit_poll_"), outcome.sequence)


async def changes_before(store: TallyStore, before: int, count: int) -> list[Change]:
    """Up to `count` changes with a sequence below `before`, newest first (the change log
    numbers its changes 1, 2, 3 ... without gaps)."""
    return await store.changes_at(range(before - 1, max(before - 1 - count, 0), -1))


async def announce(outbox: Outbox, change_seq: int, outputs: Sequence[Output]) -> int:
    """Queue a change's outputs unless that change was already announced; returns count."""
    queued, _ = await outbox.announce_many([(change_seq, outputs)])
    return len(queued)


async def change_at(store: TallyStore, sequence: int) -> Change | None:
    """The change of one sequence, None when the log has none."""
    found = await store.changes_at([sequence])
    return found[0] if found else None
