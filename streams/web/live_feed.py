"""One outbox reader per worker, fanning its published entries out to every live event stream."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from streams.rules.rehearsal import is_rehearsal_output
from streams.store.outbox import Outbox, QueuedOutput

log = logging.getLogger(__name__)

# SSE event names by outbox topic: what a graphics engine subscribes to.
EVENT_NAMES = {"results": "result", "state": "state", "alerts": "alert"}
KEEP_ALIVE = b": keep-alive\n\n"
# Most outbox entries read at once by the reader, and by a client catching up from Redis (whose
# page is joined into one write: a few hundred KB at most, for each client catching up).
READ_COUNT = 500
CATCH_UP_COUNT = 100
CATCH_UPS_AT_ONCE = 64  # clients reading their history from Redis at the same time
# Most bytes of frames joined into one write (one frame at least, and a state snapshot is
# about 17 KB): what a slow client holds in the worker is this plus what aiohttp buffers before
# it waits for the socket (64 KiB), so 2,000 clients far behind stay within a few hundred MB.
MAX_WRITE_BYTES = 16 * 1024
# How often the reader asks for the published cursor while entries it has read wait for Kafka:
# the publisher drains in a few milliseconds, and each ask is one GET.
PUBLISHED_POLL_S = 0.003
RETRY_S = 1.0  # after Redis failed the reader
# How long after the last client left the freed memory is handed back (its connections'
# buffers are freed once their handlers return, just after it leaves).
TRIM_AFTER_S = 2.0


def _hand_back_freed_memory() -> None:
    """Return the heap pages thousands of connections left free to the system.

    glibc keeps freed memory in its arenas for reuse, so a worker that served 2,000 streams
    would otherwise keep their high-water mark for the rest of the night. malloc_trim is
    glibc's own call for this; elsewhere there is nothing to do.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def sse_frame(item: QueuedOutput) -> bytes:
    """One outbox entry as a server-sent event: its sequence as id, its kind as event."""
    event = EVENT_NAMES[item.output.topic]
    data = item.output.value.replace(b"\n", b" ")
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (item.sequence, event.encode(), data)


def rehearsal_alert(item: QueuedOutput) -> bool:
    """A rehearsal's alert: streamed only to clients that ask for rehearsals (results and
    snapshots go to every client, flagged, for graphics to show as they choose)."""
    return item.output.topic == "alerts" and is_rehearsal_output(orjson.loads(item.output.value))


@dataclass(frozen=True, slots=True)
class Frame:
    sequence: int
    topic: str
    data: bytes  # the whole SSE frame, serialised once for every client
    rehearsal_alert: bool  # judged once, as the frame is made


def _streamed(topic: str, rehearsal_alert: bool, topics: Collection[str], rehearsals: bool) -> bool:
    """Whether an entry goes to a client of `topics` that did (or did not) ask for rehearsals."""
    return topic in topics and (rehearsals or not rehearsal_alert)


class FellBehind(Exception):
    """A client's next entry left the ring before it was written: the client is closed and
    reconnects with its Last-Event-ID, catching up from Redis instead of from memory."""


class LiveFeed:
    """The last `capacity` published outbox entries as SSE frames, and the clients' wake-up.

    Entries up to `base` are read from Redis by whoever needs them; every entry in
    (`base`, `released`] is in the ring. Only entries at or below the outbox's published
    cursor are released, so a screen shows nothing Kafka does not have: a history rebuilt
    from Kafka after a Redis loss is exactly what screens were shown.

    The reader runs while at least one client is joined (`joined()`), on a Redis client of
    its own (`connect`), whose socket timeout must be longer than `block_ms`.
    """

    def __init__(
        self,
        connect: Callable[[], Redis],
        namespace: str,
        capacity: int,
        block_ms: int,
    ) -> None:
        if capacity < 1:
            raise ValueError("the ring holds at least one entry")
        self._connect = connect
        self._namespace = namespace
        self.capacity = capacity
        self.block_ms = block_ms
        self._slots: list[Frame | None] = [None] * capacity
        self._start = 0  # absolute index of the oldest frame held
        self._end = 0  # absolute index one past the newest
        self.base = 0
        self.released = 0
        # Replaced on every release: a client holds the one current when it last looked, so a
        # release between its look and its wait still wakes it. One set() wakes every client.
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()  # base is known (the first published cursor is read)
        self._clients = 0
        self._catching_up = asyncio.Semaphore(CATCH_UPS_AT_ONCE)
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._outbox: Outbox | None = None

    # ---- clients ----

    @property
    def clients(self) -> int:
        return self._clients

    @contextlib.asynccontextmanager
    async def joined(self) -> AsyncIterator[LiveFeed]:
        """While a client streams: the first starts the reader, the last stops it."""
        self._clients += 1
        if self._task is None:
            self._start_reader()
        try:
            yield self
        finally:
            self._clients -= 1
            if self._clients == 0:
                await self._stop_reader()
                asyncio.get_running_loop().call_later(TRIM_AFTER_S, self._trim_if_idle)

    def _trim_if_idle(self) -> None:
        if self._clients == 0:
            _hand_back_freed_memory()

    async def stream(
        self, after: int, topics: Collection[str], heartbeat_s: float, rehearsals: bool = False
    ) -> AsyncGenerator[bytes]:
        """What to write to one client, from the entry after `after`: frames of its `topics`
        (a rehearsal's alerts only if it asked for `rehearsals`), several joined in one chunk,
        or a keep-alive comment after `heartbeat_s` of nothing. Raises FellBehind when the
        ring has moved past the client."""
        loop = asyncio.get_running_loop()
        while not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(heartbeat_s):
                    await self._ready.wait()
            if self._closed:
                return
            if not self._ready.is_set():
                yield KEEP_ALIVE
        index = self._index_after(after)
        while index is None:
            # Older than the ring: from Redis, a page at a time, only what is below the ring
            # (all published, since base never passes the published cursor). A few clients
            # at a time, in writes of the usual size: what thousands of clients resuming at
            # once hold in the worker is then bounded, not a page each.
            async with self._catching_up:
                base = self.base
                assert self._outbox is not None  # set while any client is joined
                items = await self._outbox.read(after, count=CATCH_UP_COUNT)
                older = [item for item in items if item.sequence <= base]
                # Nothing left below the ring (entries gone after a reset): join the ring.
                after = older[-1].sequence if older else base
                chunk: list[bytes] = []
                size = 0
                for item in older:
                    if item.output.topic in EVENT_NAMES and _streamed(
                        item.output.topic, rehearsal_alert(item), topics, rehearsals
                    ):
                        frame = sse_frame(item)
                        chunk.append(frame)
                        size += len(frame)
                        if size >= MAX_WRITE_BYTES:
                            yield b"".join(chunk)
                            chunk, size = [], 0
                if chunk:
                    yield b"".join(chunk)
            index = self._index_after(after)
        last_write = loop.time()
        while not self._closed:
            changed = self._changed
            frames, index, after = self._frames_from(index, after, topics, rehearsals)
            if frames:
                yield b"".join(frames)
                last_write = loop.time()
                continue
            remaining = heartbeat_s - (loop.time() - last_write)
            if remaining <= 0:
                yield KEEP_ALIVE
                last_write = loop.time()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def _index_after(self, after: int) -> int | None:
        """Absolute ring index of the first entry past `after`, or None if older than the ring."""
        if after < self.base:
            return None
        low, high = self._start, self._end
        while low < high:
            middle = (low + high) // 2
            frame = self._slots[middle % self.capacity]
            assert frame is not None
            if frame.sequence <= after:
                low = middle + 1
            else:
                high = middle
        return low

    def _frames_from(
        self, index: int, after: int, topics: Collection[str], rehearsals: bool
    ) -> tuple[list[bytes], int, int]:
        """Frames of `topics` (a rehearsal's alerts only with `rehearsals`) from ring `index`
        on, past sequence `after` (a client resuming
        ahead of what this worker has released skips the entries it has); the next index and
        the last sequence passed."""
        if index < self._start:
            raise FellBehind(f"entry {index} left the ring (now from {self._start})")
        frames: list[bytes] = []
        size = 0
        while index < self._end and size < MAX_WRITE_BYTES:
            frame = self._slots[index % self.capacity]
            assert frame is not None
            index += 1
            if frame.sequence > after:
                after = frame.sequence
                if _streamed(frame.topic, frame.rehearsal_alert, topics, rehearsals):
                    frames.append(frame.data)
                    size += len(frame.data)
        return frames, index, after

    # ---- the reader ----

    def release(self, items: list[QueuedOutput]) -> None:
        """Put published entries in the ring (evicting the oldest) and wake every client."""
        if not items:
            return
        for item in items:
            if item.output.topic not in EVENT_NAMES:
                continue  # a kind no stream carries
            if self._end - self._start == self.capacity:
                evicted = self._slots[self._start % self.capacity]
                assert evicted is not None
                self.base = evicted.sequence
                self._start += 1
            self._slots[self._end % self.capacity] = Frame(
                item.sequence, item.output.topic, sse_frame(item), rehearsal_alert(item)
            )
            self._end += 1
        self.released = items[-1].sequence
        if self._end == self._start:
            self.base = self.released  # nothing held: everything so far is Redis's
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _start_reader(self) -> None:
        self._closed = False
        redis = self._connect()
        self._outbox = Outbox(redis, self._namespace)
        self._task = asyncio.create_task(self._run(redis, self._outbox), name="live-feed")

    async def _stop_reader(self, wait: bool = False) -> None:
        """Cancel the reader; it closes its own client. The last client leaving does not wait
        for that (a blocking read may take a moment to give up); the worker stopping does."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if wait:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def close(self) -> None:
        """The worker stops: every client's stream ends and the reader stops."""
        self._closed = True
        self._ready.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        await self._stop_reader(wait=True)

    async def _run(self, redis: Redis, outbox: Outbox) -> None:
        try:
            while True:
                try:
                    await self._follow(outbox)
                except (RedisError, OSError) as error:
                    # Clients keep their connections (and heartbeats) while Redis is away.
                    log.warning(
                        "live feed: the outbox read failed (%s); again in %gs", error, RETRY_S
                    )
                    await asyncio.sleep(RETRY_S)
        finally:
            await redis.aclose()

    async def _follow(self, outbox: Outbox) -> None:
        if not self._ready.is_set():
            # Start a ring's length back, so clients resuming from before this worker started
            # are served from memory too: those entries are published, and released at once.
            published = await outbox.published()
            self.base = self.released = max(published - self.capacity, 0)
            self._ready.set()
        after = self.released
        pending: list[QueuedOutput] = []  # read, not yet on Kafka
        while True:
            if not pending:
                items = await outbox.wait_for(after, block_ms=self.block_ms, count=READ_COUNT)
            else:
                await asyncio.sleep(PUBLISHED_POLL_S)
                # Bounded: a publisher stalled on Kafka does not grow what is held here.
                room = len(pending) < READ_COUNT
                items = await outbox.read(after, count=READ_COUNT) if room else []
            if items:
                pending.extend(items)
                after = items[-1].sequence
            if pending:
                published = await outbox.published()
                ready = 0
                while ready < len(pending) and pending[ready].sequence <= published:
                    ready += 1
                if ready:
                    self.release(pending[:ready])
                    del pending[:ready]
