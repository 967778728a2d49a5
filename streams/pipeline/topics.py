"""Kafka topics of the night, named by the settings and declared on the app that uses them."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import faust

from streams.rules.backoff import backoff_delay
from streams.settings import Settings

log = logging.getLogger(__name__)

# A broker lost while the topics are created is retried, never a crash of the worker.
DECLARE_RETRY_FIRST_S = 0.5
DECLARE_RETRY_MAX_S = 10.0


@dataclass(frozen=True)
class Topics:
    declarations: faust.TopicT
    dead_letter: faust.TopicT
    results: faust.TopicT
    state_of_parties: faust.TopicT
    alerts: faust.TopicT
    newsroom: faust.TopicT
    audit: faust.TopicT

    @property
    def all(self) -> tuple[faust.TopicT, ...]:
        return (self.declarations, *self.outputs)

    @property
    def outputs(self) -> tuple[faust.TopicT, ...]:
        """Sent to, never consumed here: no agent subscribes to them, so Faust would not create
        them and the first send would let the broker auto-create each with its defaults."""
        return (
            self.dead_letter,
            self.results,
            self.state_of_parties,
            self.alerts,
            self.newsroom,
            self.audit,
        )


def input_config(settings: Settings) -> dict[str, str]:
    """The tallies are a function of the declarations log and are rebuilt from it when Redis
    loses them (streams/store/rebuild.py), so the input topic keeps every message of the night."""
    return {**settings.topic_config(), "retention.ms": str(settings.input_retention_ms)}


def audit_config(settings: Settings) -> dict[str, str]:
    """The record of who did what on the night is kept for good, as the declarations are."""
    return {**settings.topic_config(), "retention.ms": "-1"}


def register_topics(app: faust.App, settings: Settings) -> Topics:
    """Declare the night's topics on `app`, and a startup task that creates the outputs."""
    # Copies come from the app's topic_replication_factor; how many must have each write:
    copies = settings.topic_config()
    topics = Topics(
        # Faust creates only `internal` topics: without it a broker would auto-create the
        # topic with one partition and the default retention, and a worker started before the
        # replay would not find it.
        declarations=app.topic(
            settings.topic_declarations,
            partitions=settings.topic_partitions,
            config=input_config(settings),
            internal=True,
        ),
        dead_letter=app.topic(settings.topic_dead_letter, partitions=1, config=copies),
        results=app.topic(
            settings.topic_results, partitions=settings.topic_partitions, config=copies
        ),
        state_of_parties=app.topic(settings.topic_state, partitions=1, config=copies),
        alerts=app.topic(settings.topic_alerts, partitions=1, config=copies),
        newsroom=app.topic(settings.topic_newsroom, partitions=1, config=copies),
        audit=app.topic(settings.topic_audit, partitions=1, config=audit_config(settings)),
    )

    @app.task
    async def declare_output_topics() -> None:
        """Create the output topics with their partitions when the worker starts (once each)."""
        for topic in topics.outputs:
            await declare_until_done(topic)

    return topics


async def declare_until_done(topic: faust.TopicT) -> None:
    """Create `topic` if missing; while the broker cannot answer, wait and ask again.

    An exception out of an app task crashes the whole worker, and a broker restart while the
    worker starts is no reason to stop counting: the declarations agent rides it out anyway.
    """
    failures = 0
    while True:
        try:
            await topic.maybe_declare()
            return
        except Exception as error:  # whatever the broker said, ask again
            failures += 1
            delay = backoff_delay(
                failures, DECLARE_RETRY_FIRST_S, DECLARE_RETRY_MAX_S, random.random()
            )
            log.warning(
                "creating topic %s failed (%s: %s); retrying in %.1fs",
                topic.get_topic_name(),
                type(error).__name__,
                error,
                delay,
            )
            await asyncio.sleep(delay)


async def send_acknowledged(
    topic: faust.TopicT, key: bytes, value: bytes, headers: dict[str, bytes] | None = None
) -> Any:
    """Send one message and return its record metadata (partition, offset) once every in-sync
    copy has it: the app's producer sends with acks=all (streams/pipeline/app.py)."""
    delivery = await topic.send(key=key, value=value, headers=headers)
    return await delivery
