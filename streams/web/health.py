"""Web views of the worker: health, liveness, outcome counters, Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from faust.types import AppT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from streams.connections import kafka_client_options
from streams.pipeline.context import WorkerContext, context_of

CONSUMER_LAG = Gauge(
    "election_consumer_lag",
    "Messages of a declarations partition assigned to this worker not yet applied to the tallies",
    ["topic", "partition"],
)


async def _redis_answers(context: WorkerContext) -> str | None:
    try:
        await asyncio.wait_for(context.redis.ping(), timeout=2)
    except Exception as exc:  # any failure is the answer we report
        return f"{type(exc).__name__}: {exc}"
    return None


async def _kafka_answers(context: WorkerContext) -> str | None:
    settings = context.settings
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=3000,
        **kafka_client_options(settings),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout=4)
        await asyncio.wait_for(admin.describe_cluster(), timeout=4)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await admin.close()
    return None


class Health(View):
    """Whether this worker can reach Kafka and Redis; 503 when it cannot."""

    async def get(self, request: Request) -> Response:
        context = context_of(self.app)
        kafka_error, redis_error = await asyncio.gather(
            _kafka_answers(context), _redis_answers(context)
        )
        body = {
            "kafka": {"ok": kafka_error is None, "error": kafka_error},
            "redis": {"ok": redis_error is None, "error": redis_error},
            "election_id": context.settings.election_id,
        }
        status = 200 if kafka_error is None and redis_error is None else 503
        return self.json(body, status=status)


class Live(View):
    """Whether this worker process still works, checking nothing outside it; 503 once crashed.

    For a liveness probe: restarting cures a stuck or crashed process, never a Kafka or Redis
    outage (the new process could not reach them either, and each restart costs the consumer
    group a rebalance), so reachability is left to /health and the readiness probe.
    """

    async def get(self, request: Request) -> Response:
        crashed = bool(self.app.crashed)
        body = {"alive": not crashed, "election_id": context_of(self.app).settings.election_id}
        return self.json(body, status=503 if crashed else 200)


class Counters(View):
    """Outcome of every consumed message, by stage, across all workers of the election."""

    async def get(self, request: Request) -> Response:
        return self.json(await context_of(self.app).store.counters())


async def measure_consumer_lag(app: AppT, context: WorkerContext) -> None:
    """Set the lag of each declarations partition this worker holds: the log's end as its
    consumer last fetched it, less the offsets recorded with the tallies in Redis (the ones
    that count: Kafka commits follow them). A partition not yet fetched has no sample."""
    CONSUMER_LAG.clear()
    if not app.started:
        return
    topic = context.settings.topic_declarations
    read, _ = await context.store.partitions_read(topic)
    consumer = app.consumer
    for tp in sorted(consumer.assignment()):
        if tp.topic != topic:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # no fetch yet, or the consumer is between assignments
            continue
        if highwater is None or highwater < 0:
            continue
        applied = read[tp.partition].applied if tp.partition in read else -1
        CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(highwater - applied - 1, 0))


class Metrics(View):
    async def get(self, request: Request) -> Response:
        await measure_consumer_lag(self.app, context_of(self.app))
        # As a header: aiohttp refuses a content_type argument that carries a charset.
        return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES: dict[str, type[View]] = {
    "/health": Health,
    "/live": Live,
    "/counters": Counters,
    "/metrics": Metrics,
}
