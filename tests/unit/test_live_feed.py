"""The worker's one outbox reader: only published entries, a bounded ring, resumes, slow clients."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import fakeredis
import pytest
from aiohttp.test_utils import make_mocked_request

import streams.web.api
from streams.pipeline.context import WorkerContext
from streams.settings import Settings
from streams.store.outbox import Outbox, Output, QueuedOutput
from streams.web import live_feed
from streams.web.api import stream_events
from streams.web.live_feed import KEEP_ALIVE, FellBehind, LiveFeed, sse_frame

NS = "test-live:parl.2024-07-04:"
EVERY = {"results", "state", "alerts"}
TOPICS = ["results", "state", "alerts"]


def output(n: int) -> Output:
    topic = TOPICS[n % 3]
    return Output(f"o{n}", topic, f"k{n}", b'{"n": %d, "rehearsal": false}' % n)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def outbox(server: fakeredis.FakeServer) -> Outbox:
    return Outbox(fakeredis.FakeAsyncRedis(server=server), NS)


def feed_on(server: fakeredis.FakeServer, capacity: int = 100) -> LiveFeed:
    return LiveFeed(lambda: fakeredis.FakeAsyncRedis(server=server), NS, capacity, block_ms=50)


async def queue(outbox: Outbox, first: int, last: int) -> None:
    await outbox.announce_many([(n, [output(n)]) for n in range(first, last + 1)])


def ids(chunks: list[bytes]) -> list[int]:
    return [int(i) for i in re.findall(rb"^id: (\d+)$", b"".join(chunks), flags=re.MULTILINE)]


async def take(stream: AsyncIterator[bytes], count: int, timeout: float = 2.0) -> list[int]:
    """Chunks until `count` events have come, keep-alives left out."""
    chunks: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(ids(chunks)) < count:
            chunk = await anext(stream)
            if chunk != KEEP_ALIVE:
                chunks.append(chunk)
    return ids(chunks)


async def until(condition: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def test_a_frame_is_id_event_and_data_on_one_line() -> None:
    item = QueuedOutput(7, Output("r", "results", "k", b'{"a":\n1}'))
    assert sse_frame(item) == b'id: 7\nevent: result\ndata: {"a": 1}\n\n'
    alert = QueuedOutput(9, Output("a", "alerts", "k", b"{}"))
    assert sse_frame(alert) == b"id: 9\nevent: alert\ndata: {}\n\n"


async def test_only_what_is_on_kafka_reaches_a_client(
    server: fakeredis.FakeServer, outbox: Outbox
) -> None:
    await queue(outbox, 1, 3)
    await outbox.mark_published(1)
    feed = feed_on(server)
    got: list[bytes] = []

    async def collect() -> None:
        async for chunk in feed.stream(0, EVERY, heartbeat_s=10):
            got.append(chunk)

    async with feed.joined():
        reading = asyncio.create_task(collect())
        await until(lambda: ids(got) == [1])
        # Queued but not yet published: nothing more, however long the client waits.
        await asyncio.sleep(0.3)
        assert ids(got) == [1] and feed.released == 1
        await outbox.mark_published(3)
        await until(lambda: ids(got) == [1, 2, 3])
        reading.cancel()


async def test_the_ring_holds_at_most_its_capacity(
    server: fakeredis.FakeServer, outbox: Outbox
) -> None:
    await queue(outbox, 1, 10)
    await outbox.mark_published(10)
    feed = feed_on(server, capacity=4)
    async with feed.joined():
        await until(lambda: feed.released == 10)
        # The last four in memory; the rest is Redis's.
        assert feed.base == 6
        stream = feed.stream(6, EVERY, heartbeat_s=10)
        assert await take(stream, 4) == [7, 8, 9, 10]
        await stream.aclose()


async def test_a_client_older_than_the_ring_catches_up_from_redis_then_joins_it(
    server: fakeredis.FakeServer, outbox: Outbox
) -> None:
    await queue(outbox, 1, 10)
    await outbox.mark_published(10)
    feed = feed_on(server, capacity=3)
    async with feed.joined():
        await until(lambda: feed.released == 10)
        assert feed.base == 7
        from_redis = feed.stream(2, EVERY, heartbeat_s=10)
        assert await take(from_redis, 8) == [3, 4, 5, 6, 7, 8, 9, 10]
        # Filtered to its topics on both paths (Redis, then the ring): alerts are 2, 5, 8.
        alerts = feed.stream(0, {"alerts"}, heartbeat_s=10)
        assert await take(alerts, 3) == [2, 5, 8]
        from_ring = feed.stream(8, EVERY, heartbeat_s=10)
        assert await take(from_ring, 2) == [9, 10]
        await queue(outbox, 11, 11)
        await outbox.mark_published(11)
        assert await take(from_ring, 1) == [11]
        assert await take(from_redis, 1) == [11]
        for stream in (from_redis, alerts, from_ring):
            await stream.aclose()


async def test_an_idle_client_gets_keep_alives(server: fakeredis.FakeServer) -> None:
    feed = feed_on(server)
    async with feed.joined():
        stream = feed.stream(0, EVERY, heartbeat_s=0.05)
        async with asyncio.timeout(2):
            assert [await anext(stream) for _ in range(3)] == [KEEP_ALIVE] * 3
        await stream.aclose()


async def test_a_client_the_ring_has_passed_is_told_so(
    server: fakeredis.FakeServer, outbox: Outbox
) -> None:
    feed = feed_on(server, capacity=2)
    async with feed.joined():
        stream = feed.stream(0, EVERY, heartbeat_s=0.05)
        assert await anext(stream) == KEEP_ALIVE  # in the ring, waiting
        # Five entries come while the client does not read: its next left the ring.
        await queue(outbox, 1, 5)
        await outbox.mark_published(5)
        await until(lambda: feed.released == 5)
        with pytest.raises(FellBehind):
            await anext(stream)


async def test_the_reader_runs_while_someone_listens(server: fakeredis.FakeServer) -> None:
    made: list[Any] = []

    def connect() -> Any:
        made.append(fakeredis.FakeAsyncRedis(server=server))
        return made[-1]

    feed = LiveFeed(connect, NS, 10, block_ms=50)
    async with feed.joined(), feed.joined():
        assert feed.clients == 2
    assert feed.clients == 0
    async with feed.joined():
        pass
    assert len(made) == 2  # one client of its own per run, none per listener
    await feed.close()


# ---- through the view ----


@pytest.fixture
def context(server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch) -> WorkerContext:
    def client(settings: Any, url: str | None = None, **kwargs: Any) -> Any:
        return fakeredis.FakeAsyncRedis(server=server)

    monkeypatch.setattr(streams.web.api, "redis_from_settings", client)
    made = WorkerContext(Settings(sse_write_timeout_s=0.2))
    # The view's outbox namespace is the context's.
    monkeypatch.setattr(made, "namespace", NS)
    return made


def mocked(writes: Any, headers: dict[str, str] | None = None) -> tuple[Any, mock.Mock]:
    writer = mock.Mock()
    writer.write_headers = mock.AsyncMock()
    writer.write = mock.AsyncMock(side_effect=writes)
    transport = mock.Mock()
    request = make_mocked_request(
        "GET", "/api/events", headers=headers or {}, writer=writer, transport=transport
    )
    return request, transport


async def test_a_client_that_stops_reading_is_closed(
    context: WorkerContext, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await queue(outbox, 1, 3)
    await outbox.mark_published(3)
    never = asyncio.Event()

    async def write(data: bytes) -> None:
        if b"id: " in data:
            await never.wait()  # its socket buffer is full and stays full

    request, transport = mocked(write)
    with caplog.at_level(logging.DEBUG, logger="streams.web.api"):
        async with asyncio.timeout(5):
            await stream_events(context, request, topics=EVERY)
    transport.abort.assert_called_once()
    assert [r.exc_info for r in caplog.records] == [None]
    assert "write took over" in caplog.records[0].getMessage()
    assert streams.web.api.per_worker(context).feed.clients == 0


async def test_a_client_going_away_is_one_line_without_a_traceback(
    context: WorkerContext, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await queue(outbox, 1, 2)
    await outbox.mark_published(2)
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(bytes(data))
        if b"id: " in data:
            raise ConnectionResetError("Cannot write to closing transport")

    request, transport = mocked(write, {"Last-Event-ID": "1"})
    with caplog.at_level(logging.DEBUG, logger="streams.web.api"):
        async with asyncio.timeout(5):
            await stream_events(context, request, topics=EVERY)
    # Resumed after 1: its first frame is 2, written with what else was pending in one write.
    assert written[0] == b"retry: 1000\n\n"
    assert written[1].startswith(b"id: 2\nevent: alert\n")
    assert len(caplog.records) <= 1 and all(r.exc_info is None for r in caplog.records)
    transport.abort.assert_not_called()


async def test_a_cancelled_stream_is_not_swallowed(context: WorkerContext) -> None:
    async def write(data: bytes) -> None:
        return None

    request, _ = mocked(write)
    task = asyncio.create_task(stream_events(context, request, topics=EVERY))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_worker_stopping_ends_every_stream(server: fakeredis.FakeServer) -> None:
    feed = feed_on(server)
    async with feed.joined():
        stream = feed.stream(0, EVERY, heartbeat_s=30)
        waiting = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)
        await feed.close()
        with pytest.raises(StopAsyncIteration):
            async with asyncio.timeout(2):
                await waiting


async def test_freed_memory_is_handed_back_once_the_last_client_has_left(
    server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[float] = []
    monkeypatch.setattr(live_feed, "TRIM_AFTER_S", 0.05)
    monkeypatch.setattr(live_feed, "_hand_back_freed_memory", lambda: trims.append(1))
    feed = feed_on(server)
    async with feed.joined():
        async with feed.joined():
            pass
        await asyncio.sleep(0.1)
        assert trims == []  # one client is still there
    await asyncio.sleep(0.1)
    assert trims == [1]
    async with feed.joined():  # back before the trim: none while someone listens
        await asyncio.sleep(0.01)
    async with feed.joined():
        await asyncio.sleep(0.1)
    assert trims == [1]
    await asyncio.sleep(0.1)
    assert len(trims) == 2


async def test_clients_catching_up_from_redis_do_so_a_few_at_a_time_in_small_writes(
    server: fakeredis.FakeServer, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_feed, "CATCH_UPS_AT_ONCE", 2)
    monkeypatch.setattr(live_feed, "MAX_WRITE_BYTES", 100)  # about four frames
    reading = {"now": 0, "most": 0}
    read = Outbox.read

    async def slow_read(self: Outbox, after: int, count: int = 500) -> list[QueuedOutput]:
        reading["now"] += 1
        reading["most"] = max(reading["most"], reading["now"])
        await asyncio.sleep(0.01)
        try:
            return await read(self, after, count)
        finally:
            reading["now"] -= 1

    await queue(outbox, 1, 30)
    await outbox.mark_published(30)
    feed = feed_on(server, capacity=3)
    async with feed.joined():
        await until(lambda: feed.released == 30)
        monkeypatch.setattr(Outbox, "read", slow_read)
        streams = [feed.stream(0, EVERY, heartbeat_s=10) for _ in range(6)]
        chunks: list[list[bytes]] = [[] for _ in streams]

        async def follow(i: int) -> None:
            async with asyncio.timeout(5):
                while len(ids(chunks[i])) < 30:
                    chunks[i].append(await anext(streams[i]))

        await asyncio.gather(*(follow(i) for i in range(len(streams))))
        for stream in streams:
            await stream.aclose()
    assert all(ids(got) == list(range(1, 31)) for got in chunks)
    assert reading["most"] == 2
    frame = max(len(sse_frame(QueuedOutput(n, output(n)))) for n in range(1, 31))
    assert max(len(chunk) for got in chunks for chunk in got) < 100 + frame
