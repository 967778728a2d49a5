"""Tally agent: applies accepted declarations to the Redis tallies, a batch per round trip."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import AsyncIterable, Sequence
from functools import partial

import faust

from schemas.declaration import Declaration
from schemas.exit_poll import ExitPoll
from schemas.rejection import Rejection, RejectionReason
from streams import topics
from streams.app import app
from streams.counters import MESSAGES, observe_latency
from streams.rebuild import with_state
from streams.resources import redis_client, register
from streams.settings import get_settings
from streams.tally_store import PendingApply, TallyStore
from streams.validation_agent import EXIT_POLL_KEY

settings = get_settings()


def revision_conflict(declaration: Declaration, event: faust.EventT) -> Rejection:
    message = event.message
    return Rejection(
        reason=RejectionReason.REVISION_CONFLICT,
        detail=(
            f"{declaration.constituency_name} revision {declaration.revision} was already "
            "applied with different content; send a higher revision to change it"
        ),
        original_b64=base64.b64encode(message.value or b"").decode("ascii"),
        original_key=declaration.constituency_id,
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        rejected_at=dt.datetime.now(dt.UTC),
        election_id=settings.election_id,
    )


async def _apply(store: TallyStore, events: Sequence[faust.EventT]) -> None:
    """Apply a run of declarations in one round trip; dead-letter revision conflicts."""
    if not events:
        return
    pending = [
        PendingApply(
            Declaration.model_validate_json(event.message.value or b""),
            event.message.topic,
            event.message.partition,
            event.message.offset,
        )
        for event in events
    ]
    outcomes = await store.apply_batch(pending, register())
    for item, outcome, event in zip(pending, outcomes, events, strict=True):
        MESSAGES.labels("tally", outcome.outcome).inc()
        if outcome.outcome == "conflict":
            rejection = revision_conflict(item.declaration, event)
            await topics.dead_letter.send(
                key=item.declaration.constituency_id.encode(),
                value=rejection.model_dump_json().encode(),
                headers={"reason": rejection.reason.value.encode()},
            )


async def _tally(store: TallyStore, events: Sequence[faust.EventT]) -> None:
    run: list[faust.EventT] = []
    for event in events:
        if event.message.key != EXIT_POLL_KEY:
            run.append(event)
            continue
        # Offsets are recorded in order, so what came before the exit poll goes first.
        await _apply(store, run)
        run = []
        message = event.message
        outcome = await store.record_exit_poll(
            ExitPoll.model_validate_json(message.value or b""),
            message.topic,
            message.partition,
            message.offset,
        )
        MESSAGES.labels("tally", f"exit_poll_{outcome.outcome}").inc()
    await _apply(store, run)
    observe_latency((event.message.timestamp for event in events), time.time())


@app.agent(topics.accepted)
async def tally_declarations(stream: AsyncIterable[faust.EventT]) -> None:
    store = TallyStore(redis_client(), settings.election_id, settings.redis_key_prefix)
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_size, within=settings.batch_within_s
    ):
        # A Redis restart neither crashes the agent nor skips the batch: it waits, rebuilds
        # the state from Kafka if Redis came back without it, then applies the batch.
        first: dict[str, int] = {}
        for event in events:
            field = f"{event.message.topic}:{event.message.partition}"
            first.setdefault(field, event.message.offset)
        step = partial(_tally, store, events)
        await with_state(store, settings, register(), step, "tally", first)
