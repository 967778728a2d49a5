"""Validation agent: raw declarations in; accepted ones forwarded, the rest dead-lettered."""

from __future__ import annotations

from collections.abc import AsyncIterable
from functools import partial

import faust

from schemas.declaration import Declaration
from streams import topics
from streams.app import app
from streams.counters import OutcomeTally
from streams.rebuild import until_redis_answers
from streams.resources import election_namespace, redis_client, register
from streams.settings import get_settings
from streams.validation import Accepted, FeedPosition, dead_letter_key, validate_message

settings = get_settings()

EXIT_POLL_KEY = b"exit-poll"


@app.agent(topics.declarations)
async def validate_declarations(stream: AsyncIterable[faust.EventT]) -> None:
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_size, within=settings.batch_within_s
    ):
        outcomes = OutcomeTally("validation")
        for event in events:
            message = event.message
            raw = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
            key = message.key if isinstance(message.key, bytes) else None
            verdict = validate_message(
                raw,
                FeedPosition(message.topic, message.partition, message.offset, key),
                register(),
            )
            if isinstance(verdict, Accepted):
                accepted = verdict.message
                out_key = (
                    accepted.constituency_id.encode()
                    if isinstance(accepted, Declaration)
                    else EXIT_POLL_KEY
                )
                # The producer's timestamp travels on, so the tally step can time the whole way.
                await topics.accepted.send(
                    key=out_key,
                    value=accepted.model_dump_json().encode(),
                    timestamp=message.timestamp,
                )
                outcomes.add("accepted")
            else:
                rejection = verdict.rejection
                await topics.dead_letter.send(
                    # Cut, so a dead letter stays under the broker's size limit whatever came.
                    key=dead_letter_key(key),
                    value=rejection.model_dump_json().encode(),
                    headers={"reason": rejection.reason.value.encode()},
                )
                outcomes.add(f"rejected:{rejection.reason.value}")
        # One round trip per batch for the counters, never one per message; a Redis restart
        # is waited out, not allowed to crash the agent (the batch is already forwarded).
        await until_redis_answers(partial(_flush, outcomes), "validation counters")
        outcomes.observe()


async def _flush(outcomes: OutcomeTally) -> None:
    async with redis_client().pipeline(transaction=False) as pipe:
        outcomes.queue(pipe, election_namespace())
        await pipe.execute()
