"""The app factory: one Faust app per election, built from a settings object with its agents,
timers and views registered on it (nothing is built at import)."""

from __future__ import annotations

import logging

from streams.blas import one_blas_thread
from streams.collector import settle_the_heap
from streams.connections import faust_broker_credentials
from streams.pipeline import (
    declaration_agent,
    desk_decisions,
    publisher,
    publisher_process,
    webhooks,
)
from streams.pipeline.context import ElectionApp, WorkerContext
from streams.pipeline.topics import register_topics
from streams.settings import Settings
from streams.web import register_views

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> ElectionApp:
    """A worker's app for `settings`: topics, the declaration agent, the publisher, webhooks
    and the web views. Creates no file and opens no connection until the worker starts."""
    app = ElectionApp(
        WorkerContext(settings),
        broker=["kafka://" + server for server in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=faust_broker_credentials(settings),
        store="memory://",
        # Faust's own folder goes with the services' data, not the repo root (APP_DATADIR wins).
        datadir=str(settings.run_dir / "faust" / "{conf.name}-data"),
        # Every value is bytes on the wire; our pydantic models do the (de)serialising, so
        # a malformed message reaches validation instead of crashing Faust's codec.
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # Every in-sync copy has a dead letter before it counts as sent. (Faust makes its
        # producer idempotent only with exactly-once transactions; a retried dead letter
        # may repeat, as a redelivered one does: docs/scaling.md, Rebalances.)
        producer_acks=-1,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Commit every second: a crash then redelivers at most a second's messages, and
        # redelivery changes nothing anyway. Not every N messages: Faust commits those inline
        # in its fetch loop, flushing the producer first, which stalls every agent each time.
        broker_commit_every=1_000_000,
        broker_commit_interval=1.0,
        # Stopping or rebalancing does not wait for the agent's batch to be acknowledged: a
        # crashed agent never acknowledges it, and the worker would hang on its way out.
        # Nothing is lost: only acknowledged offsets are committed, and a batch applied twice
        # is applied once (each step checks its offset).
        stream_wait_empty=False,
        # More than Faust's 1 MiB a partition: a fetch that leaves a partition unread is
        # followed by one for the other (empty) topics only, which the broker holds for Faust's
        # fixed 1.5 s wait, and the agents starve meanwhile (scripts/bench/floor.py measured
        # the stalls).
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        # Sends to the dead-letter topic wait up to 2 ms to share a request, rather than one
        # produce request (and socket write) per message.
        producer_linger=0.002,
        # A killed worker's partitions move to the others after this, not Faust's 60 s default.
        broker_session_timeout=settings.kafka_session_timeout_s,
        autodiscover=False,
    )
    topics = app.night_topics = register_topics(app, settings)
    declaration_agent.register(app, topics)
    if settings.publisher_process:
        publisher_process.register(app)
    else:
        publisher.register(app)
    desk_decisions.register(app)
    webhooks.register(app)
    register_views(app)

    @app.task
    async def load_then_settle_the_heap() -> None:
        register = app.context.register
        log.info("reference data of %s: %d seats", register.election_id, register.total_seats)
        settle_the_heap(settings.gc_young_threshold)
        one_blas_thread()

    return app
