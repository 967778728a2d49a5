"""HTTP API for graphics: state of the parties, seats, declarations, alerts, and live events."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import weakref
from collections.abc import Iterable
from typing import Any, cast

import orjson
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View
from redis.exceptions import RedisError

from schemas.results import SeatResult
from streams.connections import redis_from_settings
from streams.pipeline.context import WorkerContext, context_of
from streams.rules.projection import declared_seat, seat_projection
from streams.rules.rehearsal import withheld
from streams.store.outbox import Outbox, QueuedOutput
from streams.web.body_cache import Body, BodyCache, etag_of
from streams.web.live_feed import EVENT_NAMES, FellBehind, LiveFeed

log = logging.getLogger(__name__)

# Every idle stream gets a comment this often: well inside the 60 s after which common
# proxies close a quiet connection.
HEARTBEAT_S = 15.0
# Every event stream's: never cached, and never held back by a buffering proxy (nginx).
EVENT_STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
SOCKET_SLACK_S = 10.0  # how much longer than a blocking read its socket waits for the answer
# The largest outbox sequence a client may name: Redis reads stream ids as 64-bit numbers and
# answers "Invalid stream ID" past them, and no night comes near this.
LARGEST_SEQUENCE = 2**63 - 1


class _PerWorker:
    """What the views of one worker share: the live feed and the cached polled bodies."""

    def __init__(self, context: WorkerContext) -> None:
        settings = context.settings
        # The reader's own client: its blocking XREAD holds a connection, and its socket waits
        # past the block, where redis-py's default (5 s in redis-py 8) would cut a quiet night.
        self.feed = LiveFeed(
            lambda: redis_from_settings(settings, socket_timeout=HEARTBEAT_S + SOCKET_SLACK_S),
            context.namespace,
            capacity=settings.sse_buffer_events,
            block_ms=int(HEARTBEAT_S * 1000),
        )
        self.state = BodyCache()
        self.seats = BodyCache()


# By context, not on it: the pipeline's context must not import the views.
_PER_WORKER: weakref.WeakKeyDictionary[WorkerContext, _PerWorker] = weakref.WeakKeyDictionary()


def per_worker(context: WorkerContext) -> _PerWorker:
    shared = _PER_WORKER.get(context)
    if shared is None:
        shared = _PER_WORKER[context] = _PerWorker(context)
    return shared


async def close_live_streams(context: WorkerContext) -> None:
    """The worker stops: end every event stream (else the web server waits for them)."""
    shared = _PER_WORKER.get(context)
    if shared is not None:
        await shared.feed.close()


def json_with_etag(
    request: Request, body: bytes | Body, content_type: str = "application/json"
) -> Response:
    """Polled endpoints answer 304 when nothing changed, so a poller costs almost nothing.

    A cached Body goes gzipped to a client that accepts it, compressed once per change.
    JSON unless `content_type` says otherwise (PA's XML, streams/web/pa_api.py)."""
    headers = {"Cache-Control": "no-cache", "Content-Type": content_type}
    if isinstance(body, Body):
        headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            content, etag = body.gzipped, body.gzip_etag
            headers["Content-Encoding"] = "gzip"
        else:
            content, etag = body.content, body.etag
    else:
        content, etag = body, etag_of(body)
    headers["ETag"] = etag
    if request.headers.get("If-None-Match") == etag:
        response = aiohttp_web.Response(status=304, headers={"ETag": etag})
    else:
        response = aiohttp_web.Response(body=content, headers=headers)
    return cast(Response, response)  # what Faust's aiohttp driver hands back as its Response


class StateView(View):
    """The state of the parties now: seats, change, votes, share, seats declared."""

    async def get(self, request: Request) -> Response:
        context = context_of(self.app)
        store, register = context.store, context.register

        async def build() -> bytes:
            state = await store.state(register)
            # The worker's mode: it tallies only declarations of that mode.
            state = state.model_copy(update={"rehearsal": context.settings.mode == "rehearsal"})
            if context.projecting is not None:
                # Made from the same seats as the state snapshot on Kafka at this sequence:
                # its central figures are a function of the declared seats, whoever computes
                # them (the range here is always fresh; a snapshot's may be up to
                # ELECTION_PROJECTION_RANGE_EVERY_S of the night older).
                seats, exit_poll = await asyncio.gather(store.seats(), store.exit_poll())
                projection = seat_projection(
                    context.projecting.project(declared_seat(seat) for seat in seats.values()),
                    exit_poll,
                    state.as_of,
                )
                state = state.model_copy(update={"projection": projection})
            return state.model_dump_json().encode()

        body = await per_worker(context).state.get(build, store.sequence)
        return json_with_etag(request, body)


class SeatsView(View):
    """Every declared seat's latest result, keyed by ONS id."""

    async def get(self, request: Request) -> Response:
        context = context_of(self.app)
        store = context.store

        async def build() -> bytes:
            seats = await store.seats()
            return orjson.dumps({ons: seat.model_dump(mode="json") for ons, seat in seats.items()})

        body = await per_worker(context).seats.get(build, store.sequence)
        return json_with_etag(request, body)


class SeatView(View):
    """One constituency's result with every candidate."""

    async def get(self, request: Request, ons_id: str) -> Response:
        context = context_of(self.app)
        if context.register.constituency(ons_id) is None:
            return self.json({"error": f"no constituency {ons_id}"}, status=404)
        seat = await context.store.seat(ons_id)
        if seat is None:
            return self.json({"error": f"{ons_id} has not declared"}, status=404)
        return json_with_etag(request, seat.model_dump_json().encode())


def latest_declarations(seats: Iterable[SeatResult], limit: int) -> list[SeatResult]:
    """Seats by declaration time, newest first, whatever order their messages arrived in.

    The night's order reversed: the night takes seats by `declared_at`, then constituency
    name, then ONS id (seats declared in the same minute: the order the replay sends them
    in, and how the publisher tells first and last), and this list is latest first, so of
    two seats declared at the same moment the one later by name comes first. The live
    page's ticker sorts the same way.
    """
    return sorted(
        seats,
        key=lambda seat: (seat.declared_at, seat.constituency_name, seat.constituency_id),
        reverse=True,
    )[:limit]


def alerts_by_time(items: Iterable[QueuedOutput]) -> list[dict[str, Any]]:
    """The alerts among queued outputs, by the time of what they tell, oldest first.

    Ordered by `occurred_at` (the declaration's time; the exit poll's publication), then by
    outbox `sequence` among alerts of the same moment. Each carries its `sequence`.
    """
    alerts = [
        # The stored alert has no position yet (sequence null): set it after the spread.
        {**orjson.loads(item.output.value), "sequence": item.sequence}
        for item in items
        if item.output.topic == "alerts"
    ]
    return sorted(alerts, key=lambda alert: (_instant(alert.get("occurred_at")), alert["sequence"]))


def _instant(value: Any) -> dt.datetime:
    """An ISO time as an aware datetime; none or an unreadable one sorts before any other."""
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return _EARLIEST
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


class LatestDeclarationsView(View):
    """The latest declarations by declaration time, newest first (?limit=N, default 20).

    Ordered by (`declared_at`, constituency name, ONS id), latest first.
    """

    async def get(self, request: Request) -> Response:
        limit = _int_param(request, "limit", 20, upper=650)
        seats = await context_of(self.app).store.seats()
        latest = latest_declarations(seats.values(), limit)
        body = orjson.dumps([seat.model_dump(mode="json") for seat in latest])
        return json_with_etag(request, body)


class AlertsView(View):
    """Alerts so far by the time of what they tell, oldest first.

    Ordered by `occurred_at`, then outbox `sequence`. `?after=<outbox sequence>` gives only
    the alerts queued after that position, in the same order: resume from the largest
    `sequence` seen, which need not be the last alert's. A rehearsal's alerts only with
    `?rehearsal=1`.
    """

    async def get(self, request: Request) -> Response:
        after = _int_param(request, "after", 0)
        if after > LARGEST_SEQUENCE:
            error = {"error": f"after must be an outbox sequence from 0 to {LARGEST_SEQUENCE}"}
            return self.json(error, status=400)
        queued = [
            item
            async for item in _all_after(context_of(self.app).outbox, after)
            if item.output.topic == "alerts"
        ]
        rehearsals = wants_rehearsals(request)
        alerts = [alert for alert in alerts_by_time(queued) if not withheld(alert, rehearsals)]
        return json_with_etag(request, orjson.dumps(alerts))


class EventsView(View):
    """Server-sent events of every change (result, state, alert); resumes from Last-Event-ID.
    A rehearsal's alerts only with `?rehearsal=1`."""

    async def get(self, request: Request) -> Any:
        return await stream_events(context_of(self.app), request, topics=set(EVENT_NAMES))


class AlertEventsView(View):
    """Server-sent events of alerts only; resumes from Last-Event-ID. A rehearsal's alerts
    only with `?rehearsal=1`."""

    async def get(self, request: Request) -> Any:
        return await stream_events(context_of(self.app), request, topics={"alerts"})


def wants_rehearsals(request: Request) -> bool:
    """A client that asked for a rehearsal's alerts (`?rehearsal=1`): a newsroom screen or a
    test rig, never an app's public feed, which gets live alerts only."""
    return request.query.get("rehearsal") == "1"


def _int_param(request: Request, name: str, default: int, upper: int | None = None) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        value = default
    value = max(value, 0)
    return min(value, upper) if upper is not None else value


async def _all_after(outbox: Outbox, after: int) -> Any:
    while True:
        batch = await outbox.read(after=after, count=1000)
        if not batch:
            return
        for item in batch:
            yield item
        after = batch[-1].sequence


def resume_position(request: Request) -> int:
    """The outbox sequence a stream resumes after: Last-Event-ID, else ?after=, else 0."""
    last_id = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        after = max(int(last_id), 0)
    except ValueError:
        after = 0
    if after > LARGEST_SEQUENCE:
        # No sequence this large was ever sent: resume from the start rather than fail, which
        # a browser would answer by reconnecting with the same id for ever.
        after = 0
    return after


async def stream_events(
    context: WorkerContext, request: Request, topics: set[str]
) -> aiohttp_web.StreamResponse:
    """One client's stream: entries after its position, from Redis while older than the
    worker's ring, then from the ring as the one reader releases them; heartbeats when idle.

    A client too slow for the night (its next entry left the ring, or a write waited past
    ELECTION_SSE_WRITE_TIMEOUT_S) is closed: it reconnects with its Last-Event-ID and catches
    up from
    Redis, so no client makes the worker hold more than the ring and a write's buffer.
    """
    after = resume_position(request)
    peer = cast(aiohttp_web.BaseRequest, request)  # what Faust's aiohttp driver hands a view
    response = aiohttp_web.StreamResponse(headers=EVENT_STREAM_HEADERS)
    await response.prepare(request)  # type: ignore[arg-type]
    feed = per_worker(context).feed
    write_timeout = context.settings.sse_write_timeout_s
    why = ""
    try:
        async with (
            feed.joined(),
            contextlib.aclosing(
                feed.stream(after, topics, HEARTBEAT_S, wants_rehearsals(request))
            ) as chunks,
        ):
            await response.write(b"retry: 1000\n\n")
            async for chunk in chunks:
                async with asyncio.timeout(write_timeout):
                    await response.write(chunk)
    except TimeoutError:
        why = f"a write took over {write_timeout:g} s"
    except FellBehind:
        why = "it fell behind the ring"
    except RedisError as error:
        why = f"its catch-up read from Redis failed ({error})"  # it resumes from where it was
    except ConnectionResetError:
        # aiohttp's ClientConnectionResetError is one too: the client went away.
        log.debug("event stream: the client at %s went away", peer.remote)
        return response
    if why:
        log.info("event stream: closed the client at %s: %s", peer.remote, why)
        # Drop what is buffered for it: a graceful end would wait behind that buffer.
        if peer.transport is not None:
            peer.transport.abort()
    return response


ROUTES: dict[str, type[View]] = {
    "/api/state": StateView,
    "/api/seats": SeatsView,
    "/api/seats/{ons_id}": SeatView,
    "/api/declarations": LatestDeclarationsView,
    "/api/alerts": AlertsView,
    "/api/events": EventsView,
    "/api/alerts/events": AlertEventsView,
}
