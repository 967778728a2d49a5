"""A minimal Faust app for the round-trip test: upper-cases every message it reads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable

import faust

app = faust.App(
    os.environ["ELECTION_APP_ID"],
    broker="kafka://" + os.environ["ELECTION_KAFKA_BOOTSTRAP_SERVERS"],
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    topic_replication_factor=1,
)
source = app.topic(os.environ["ECHO_IN"])
sink = app.topic(os.environ["ECHO_OUT"])


@app.agent(source)
async def shout(stream: AsyncIterable[faust.EventT]) -> None:
    async for event in stream.events():  # type: ignore[attr-defined]
        await sink.send(key=event.key, value=bytes(event.value).upper())
