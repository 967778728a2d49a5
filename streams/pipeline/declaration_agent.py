"""Declaration agent: validates each feed message and records the batch in one Redis round trip."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import AsyncIterable, Awaitable, Iterator, Sequence
from functools import partial
from typing import Any

import faust
from mode import CrashingSupervisor

from schemas.declaration import Declaration
from schemas.rejection import Rejection, RejectionReason
from streams.pipeline.context import ElectionApp, WorkerContext
from streams.pipeline.metrics import observe_latency, observe_outcomes
from streams.pipeline.topics import Topics
from streams.rules.reference import Register
from streams.rules.rehearsal import Mode
from streams.rules.validation import (
    FeedPosition,
    NightWindow,
    Rejected,
    dead_letter_key,
    kafka_time,
    validate_message,
)
from streams.store.rebuild import with_state
from streams.store.tally_store import (
    PendingApply,
    PendingRejection,
    PendingStep,
    StepOutcome,
    step_of,
)

log = logging.getLogger(__name__)

# How long a crashed worker may take to stop before it is ended outright. Faust's stop can
# wait for ever on a commit through a consumer thread the crash already stopped.
STOP_AFTER_CRASH_S = 15.0
CRASH_EXIT_CODE = 70  # EX_SOFTWARE


def _refused_by_the_tally(
    reason: RejectionReason,
    detail: str,
    declaration: Declaration,
    event: faust.EventT,
    election_id: str,
) -> Rejection:
    """A declaration that passed validation but that the tally would not apply."""
    message = event.message
    return Rejection(
        reason=reason,
        detail=detail,
        original_b64=base64.b64encode(message.value or b"").decode("ascii"),
        original_key=declaration.constituency_id,
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        rejected_at=dt.datetime.now(dt.UTC),
        election_id=election_id,
        # Validation took it, so its flag is the worker's mode.
        rehearsal=declaration.rehearsal,
    )


def revision_conflict(declaration: Declaration, event: faust.EventT, election_id: str) -> Rejection:
    detail = (
        f"{declaration.constituency_name} revision {declaration.revision} was already "
        "applied with different content; send a higher revision to change it"
    )
    return _refused_by_the_tally(
        RejectionReason.REVISION_CONFLICT, detail, declaration, event, election_id
    )


def revision_jump(
    declaration: Declaration,
    current_revision: int,
    max_revision_jump: int,
    event: faust.EventT,
    election_id: str,
) -> Rejection:
    """Applied, a revision this far ahead would leave the seat's genuine corrections superseded:
    the desk is told what the seat stands at and which revisions it will take."""
    stands_at = (
        f"its current revision {current_revision}"
        if current_revision
        else "0 (no revision of it applied yet)"
    )
    detail = (
        f"{declaration.constituency_name} revision {declaration.revision} is more than "
        f"{max_revision_jump} (ELECTION_MAX_REVISION_JUMP) past {stands_at}; not applied. Send the "
        f"true figures as revision {current_revision + 1} to {current_revision + max_revision_jump}"
    )
    return _refused_by_the_tally(
        RejectionReason.REVISION_JUMP, detail, declaration, event, election_id
    )


def tally_rejection(
    step: PendingApply,
    outcome: StepOutcome,
    event: faust.EventT,
    election_id: str,
    max_revision_jump: int,
) -> Rejection | None:
    """The dead letter an accepted declaration's tally outcome calls for, if any."""
    if outcome.outcome == "conflict":
        return revision_conflict(step.declaration, event, election_id)
    if outcome.outcome == "revision_jump":
        current = outcome.current_revision or 0
        return revision_jump(step.declaration, current, max_revision_jump, event, election_id)
    return None


async def steps_of(
    events: Sequence[faust.EventT],
    reg: Register,
    window: NightWindow,
    max_bytes: int,
    dead_letter: faust.TopicT,
    mode: Mode,
) -> tuple[list[PendingStep], list[Awaitable[Any]]]:
    """Validate a batch: the step each message becomes, and its dead letters, already sent.

    Each rejection goes to the producer as soon as it is made, as the producer takes it: a
    batch of large bad messages is never held whole (it would be twice, original and base64).
    """
    steps: list[PendingStep] = []
    sent: list[Awaitable[Any]] = []
    for event in events:
        message = event.message
        raw = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
        key = message.key if isinstance(message.key, bytes) else None
        where = (message.topic, message.partition, message.offset)
        position = FeedPosition(*where, key, kafka_time(message.timestamp))
        verdict = validate_message(
            raw, position, reg, window=window, max_bytes=max_bytes, mode=mode
        )
        steps.append(step_of(verdict, position))
        if isinstance(verdict, Rejected):
            # Cut, so a dead letter stays under the broker's size limit whatever came.
            sent.append(await _dead_letter(dead_letter, dead_letter_key(key), verdict.rejection))
    return steps, sent


async def _dead_letter(
    topic: faust.TopicT, key: bytes | None, rejection: Rejection
) -> Awaitable[Any]:
    """Hand a rejection to the producer; the result resolves once Kafka has it."""
    return await topic.send(
        key=key,
        value=rejection.model_dump_json().encode(),
        headers={"reason": rejection.reason.value.encode()},
    )


def _outcomes(
    steps: Sequence[PendingStep], outcomes: Sequence[StepOutcome]
) -> Iterator[tuple[str, str]]:
    """(stage, outcome) of each message, as Lua counted them in Redis."""
    for step, outcome in zip(steps, outcomes, strict=True):
        if outcome.outcome == "redelivered":
            yield "kafka", "redelivered"
        elif isinstance(step, PendingRejection):
            yield "validation", f"rejected:{step.reason}"
        else:
            yield "validation", "accepted"
            yield "tally", outcome.outcome


async def _state_ready() -> None:
    return None


def _end_the_worker_if_stopping_stalls(error: BaseException) -> None:
    """The agent crashed and the worker is stopping: make sure it ends within a bound."""

    def end() -> None:
        log.critical(
            "the worker did not stop within %.0fs of its agent crashing (%r): ending it",
            STOP_AFTER_CRASH_S,
            error,
        )
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)

    timer = threading.Timer(STOP_AFTER_CRASH_S, end)
    timer.daemon = True  # a worker that stops in time is not held back by it
    timer.start()


def register(app: ElectionApp, topics: Topics) -> None:
    """Subscribe the declaration agent to the declarations topic of `app`."""

    # A failure the agent does not expect ends the worker, loud, for its supervisor to restart
    # from the committed offsets. Faust's default would restart the agent in place without
    # the batch it was holding: seats missing until a later batch found the gap.
    @app.agent(
        topics.declarations,
        name="streams.declaration_agent.tally_declarations",
        supervisor_strategy=CrashingSupervisor,
    )
    async def tally_declarations(stream: AsyncIterable[faust.EventT]) -> None:
        try:
            await tally(app.context, topics, stream)
        except Exception as error:
            _end_the_worker_if_stopping_stalls(error)
            raise


async def tally(
    context: WorkerContext,
    topics: Topics,
    stream: AsyncIterable[faust.EventT],
) -> None:
    """Validate and record the stream's messages a batch at a time, for ever."""
    settings = context.settings
    store = context.store
    window = settings.night_window()
    # The state is made sure of (marked fresh, or rebuilt) before the first message, not on
    # it: the publisher leads only over a whole state, and taking the lead (a Kafka producer,
    # a resync from the output topics) took 0.4 s that the night's first results waited for.
    await with_state(store, settings, context.register, _state_ready, "tally")
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_size, within=settings.batch_within_s
    ):
        reg = context.register
        steps, dead_letters = await steps_of(
            events, reg, window, settings.max_message_bytes, topics.dead_letter, settings.mode
        )
        # Dead letters reach Kafka before the batch's offsets are recorded: a crash between
        # the two sends a rejection twice (each names its source offset), never not at all.
        await asyncio.gather(*dead_letters)
        first: dict[str, int] = {}
        for event in events:
            first.setdefault(
                f"{event.message.topic}:{event.message.partition}", event.message.offset
            )
        # A Redis restart neither crashes the agent nor skips the batch: it waits, rebuilds
        # the state from Kafka if Redis came back without it, then records the batch.
        apply = partial(
            store.apply_steps,
            steps,
            reg,
            max_revision_jump=settings.max_revision_jump,
            source_precedence=settings.source_precedence,
        )
        outcomes = await with_state(store, settings, reg, apply, "tally", first)
        observe_outcomes(_outcomes(steps, outcomes))
        jump = settings.max_revision_jump
        refused = [
            (
                step.declaration.constituency_id,
                tally_rejection(step, outcome, event, settings.election_id, jump),
            )
            for step, outcome, event in zip(steps, outcomes, events, strict=True)
            if isinstance(step, PendingApply)
        ]
        await asyncio.gather(
            *[
                await _dead_letter(topics.dead_letter, ons_id.encode(), rejection)
                for ons_id, rejection in refused
                if rejection is not None
            ]
        )
        observe_latency(
            (
                event.message.timestamp
                for step, event in zip(steps, events, strict=True)
                if not isinstance(step, PendingRejection)
            ),
            time.time(),
        )
