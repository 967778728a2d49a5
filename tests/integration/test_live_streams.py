"""Live event streams on a real worker: a quiet spell of minutes, and many clients resuming."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
import redis

from scripts.chaos import Outgoing
from scripts.replay import build_outgoing
from streams.rules.reference import Register, load_register
from streams.store.keys import OUTBOX, election_namespace
from streams.web.api import HEARTBEAT_S
from tests.integration.helpers import WorkerProcess
from tests.integration.pipeline import (
    DATA_DIR,
    ELECTION_ID,
    Pipeline,
    module_pipeline,
)

SILENCE_S = 5 * 60
CLIENTS = 200
SHORT_NIGHT = 40  # seats
LATER_SEAT = 45  # the result after the silence: one past the short night
_ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, redis_url: str) -> Iterator[Pipeline]:
    with module_pipeline(kafka_bootstrap, redis_url, "live") as made:
        yield made


@pytest.fixture(scope="module")
def worker(pipeline: Pipeline) -> Iterator[WorkerProcess]:
    with pipeline.worker("live") as worker:
        worker.wait_for_log("Ready", timeout=120)
        yield worker


@pytest.fixture(scope="module")
def night() -> list[Outgoing]:
    return build_outgoing(DATA_DIR)


def outbox_sequences(pipeline: Pipeline) -> list[int]:
    client = redis.Redis.from_url(pipeline.redis_url)
    try:
        key = election_namespace(pipeline.prefix, ELECTION_ID) + OUTBOX
        entries = client.xrange(key)
    finally:
        client.close()
    return [int(entry_id.decode().split("-", 1)[0]) for entry_id, _ in entries]  # type: ignore[union-attr]


def results(feed: list[Outgoing]) -> list[Outgoing]:
    return [item for item in feed if item.kind == "result"]


def seats_in(feed: list[Outgoing]) -> int:
    return len({item.key for item in feed if item.kind == "result"})


def test_an_idle_stream_stays_up_on_heartbeats_and_then_gets_the_next_event(
    worker: WorkerProcess, pipeline: Pipeline, register: Register, night: list[Outgoing]
) -> None:
    heartbeats = 0
    events: list[str] = []
    after = max(outbox_sequences(pipeline), default=0)  # whatever another test queued
    # A read timeout well past the heartbeat: a stream that went quiet fails the test.
    timeout = httpx.Timeout(10.0, read=HEARTBEAT_S * 3)
    with (
        httpx.Client(base_url=worker.base_url, timeout=timeout) as api,
        api.stream("GET", "/api/events", params={"after": str(after)}) as response,
    ):
        assert response.status_code == 200
        silence_ends = time.monotonic() + SILENCE_S
        lines = response.iter_lines()
        for line in lines:
            if line.startswith(":"):
                heartbeats += 1
            assert not line.startswith("id:"), "an event in the silence"
            if time.monotonic() >= silence_ends:
                break
        assert heartbeats >= SILENCE_S / HEARTBEAT_S - 1, heartbeats
        # After minutes of nothing, the same connection still carries the next change.
        # A seat the other test of this module does not send.
        pipeline.send([results(night)[LATER_SEAT]])
        for line in lines:
            if line.startswith("event:"):
                events.append(line.removeprefix("event:").strip())
                break
    assert events and events[0] in {"result", "state", "alert"}


async def read_all(base_url: str, clients: int, last: int) -> list[list[int]]:
    """`clients` streams from the start, each read until it has sequence `last`."""
    received: list[list[int]] = [[] for _ in range(clients)]

    async def one(session: aiohttp.ClientSession, got: list[int]) -> None:
        # Every entry, a rehearsal's alerts too: the replayed night is a rehearsal.
        params = {"after": "0", "rehearsal": "1"}
        async with session.get(base_url + "/api/events", params=params) as response:
            assert response.status == 200
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                cut = buffer.rfind(b"\n\n")
                if cut < 0:
                    continue
                complete, buffer = buffer[: cut + 2], buffer[cut + 2 :]
                got.extend(int(n) for n in _ID.findall(complete))
                if got and got[-1] >= last:
                    return

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120, sock_read=HEARTBEAT_S * 3)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session, got) for got in received))
    return received


def test_many_clients_resuming_from_the_start_each_get_every_event_in_order(
    worker: WorkerProcess, pipeline: Pipeline, register: Register, night: list[Outgoing]
) -> None:
    short = results(night)[:SHORT_NIGHT]
    pipeline.send(short)
    pipeline.wait_until_published(register, seats=seats_in(short))
    expected = outbox_sequences(pipeline)
    assert len(expected) >= SHORT_NIGHT  # a result per seat, and snapshots and alerts
    received = asyncio.run(read_all(worker.base_url, CLIENTS, expected[-1]))
    wrong = [got for got in received if got != expected]
    assert not wrong, f"{len(wrong)} of {CLIENTS} clients differ; first: {wrong[0][:20]}"
