"""Web views of the worker: health, liveness, outcome counters, Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from aiokafka.admin import AIOKafkaAdminClient
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams import admin as _admin_views  # noqa: F401  (registers the admin views)
from streams.app import app
from streams.connections import kafka_client_options
from streams.counters import COUNTERS_KEY, parse_counters
from streams.resources import election_namespace, redis_client
from streams.settings import get_settings

settings = get_settings()


async def _redis_answers() -> str | None:
    try:
        await asyncio.wait_for(redis_client().ping(), timeout=2)
    except Exception as exc:  # any failure is the answer we report
        return f"{type(exc).__name__}: {exc}"
    return None


async def _kafka_answers() -> str | None:
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


@app.page("/health")
class Health(View):
    """Whether this worker can reach Kafka and Redis; 503 when it cannot."""

    async def get(self, request: Request) -> Response:
        kafka_error, redis_error = await asyncio.gather(_kafka_answers(), _redis_answers())
        body = {
            "kafka": {"ok": kafka_error is None, "error": kafka_error},
            "redis": {"ok": redis_error is None, "error": redis_error},
            "election_id": settings.election_id,
        }
        status = 200 if kafka_error is None and redis_error is None else 503
        return self.json(body, status=status)


@app.page("/live")
class Live(View):
    """Whether this worker process still works, checking nothing outside it; 503 once crashed.

    For a liveness probe: restarting cures a stuck or crashed process, never a Kafka or Redis
    outage (the new process could not reach them either, and each restart costs the consumer
    group a rebalance), so reachability is left to /health and the readiness probe.
    """

    async def get(self, request: Request) -> Response:
        crashed = bool(app.crashed)
        body = {"alive": not crashed, "election_id": settings.election_id}
        return self.json(body, status=503 if crashed else 200)


@app.page("/counters")
class Counters(View):
    """Outcome of every consumed message, by stage, across all workers of the election."""

    async def get(self, request: Request) -> Response:
        raw = await redis_client().hgetall(election_namespace() + COUNTERS_KEY)
        return self.json(parse_counters(raw))


class ConsumerLag(Collector):
    """Consumer lag per assigned topic-partition, read from Faust's consumer at scrape time.

    Lag is the partition's highwater (the offset the next message will get, as the last fetch
    saw it) minus the group's committed offset (the next one to process). A partition not yet
    fetched or committed has no sample rather than a made-up one.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "election_consumer_lag",
            "Messages of a topic-partition not yet committed by this worker's consumer group",
            labels=["topic", "partition"],
        )
        consumer = app.consumer if app.started else None
        if consumer is not None:
            # Faust keeps the committed offsets here, seeded from Kafka on each assignment.
            committed = getattr(consumer, "_committed_offset", {})
            for tp in sorted(consumer.assignment()):
                try:
                    highwater = consumer.highwater(tp)
                except Exception:  # no fetch yet, or the consumer is between assignments
                    continue
                done = committed.get(tp)
                if highwater is not None and done is not None:
                    lag.add_metric([tp.topic, str(tp.partition)], max(highwater - done, 0))
        yield lag


REGISTRY.register(ConsumerLag())


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        # As a header: aiohttp refuses a content_type argument that carries a charset.
        return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
