"""Tally agent: applies accepted declarations to the Redis tallies, a batch per round trip."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterable

import faust

from schemas.declaration import Declaration
from schemas.exit_poll import ExitPoll
from schemas.rejection import Rejection, RejectionReason
from streams import topics
from streams.app import app
from streams.counters import MESSAGES
from streams.resources import redis_client, register
from streams.settings import get_settings
from streams.tally_store import PendingApply, TallyStore
from streams.validation_agent import EXIT_POLL_KEY

settings = get_settings()


def _conflict(declaration: Declaration, raw: bytes, event: faust.EventT) -> Rejection:
    return Rejection(
        reason=RejectionReason.REVISION_CONFLICT,
        detail=(
            f"{declaration.constituency_name} revision {declaration.revision} was already "
            "applied with different content; send a higher revision to change it"
        ),
        original_b64=base64.b64encode(raw).decode("ascii"),
        original_key=declaration.constituency_id,
        source_topic=event.message.topic,
        source_partition=event.message.partition,
        source_offset=event.message.offset,
        rejected_at=dt.datetime.now(dt.UTC),
        election_id=settings.election_id,
    )


@app.agent(topics.accepted)
async def tally_declarations(stream: AsyncIterable[faust.EventT]) -> None:
    store = TallyStore(redis_client(), settings.election_id, settings.redis_key_prefix)
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_size, within=settings.batch_within_s
    ):
        pending: list[tuple[PendingApply, bytes, faust.EventT]] = []
        for event in events:
            message = event.message
            raw: bytes = message.value
            if message.key == EXIT_POLL_KEY:
                # Once a night: its own round trip costs nothing on the hot path.
                await store.record_exit_poll(
                    ExitPoll.model_validate_json(raw),
                    message.topic,
                    message.partition,
                    message.offset,
                )
                continue
            declaration = Declaration.model_validate_json(raw)
            pending.append(
                (
                    PendingApply(declaration, message.topic, message.partition, message.offset),
                    raw,
                    event,
                )
            )
        # One round trip for the batch; the Lua step counts each outcome atomically.
        applied = await store.apply_batch([item for item, _, _ in pending], register())
        for (item, raw, event), result in zip(pending, applied, strict=True):
            MESSAGES.labels("tally", result.outcome).inc()
            if result.outcome == "conflict":
                rejection = _conflict(item.declaration, raw, event)
                await topics.dead_letter.send(
                    key=item.declaration.constituency_id.encode(),
                    value=rejection.model_dump_json().encode(),
                    headers={"reason": rejection.reason.value.encode()},
                )
