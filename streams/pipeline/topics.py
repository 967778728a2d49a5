"""Kafka topics of the night, named by the settings."""

from __future__ import annotations

import faust

from streams.app import app
from streams.settings import get_settings

settings = get_settings()

# The tallies are a function of the declarations log and are rebuilt from it when Redis loses
# them (streams/rebuild.py), so the input topic keeps every message of the night. Faust
# creates only `internal` topics: without it a broker would auto-create the topic with one
# partition and the default retention, and a worker started before the replay would not
# find it.
INPUT_CONFIG = {"retention.ms": str(settings.input_retention_ms)}

declarations: faust.TopicT = app.topic(
    settings.topic_declarations,
    partitions=settings.topic_partitions,
    config=INPUT_CONFIG,
    internal=True,
)
dead_letter: faust.TopicT = app.topic(settings.topic_dead_letter, partitions=1)
results: faust.TopicT = app.topic(settings.topic_results, partitions=settings.topic_partitions)
state_of_parties: faust.TopicT = app.topic(settings.topic_state, partitions=1)
alerts: faust.TopicT = app.topic(settings.topic_alerts, partitions=1)

ALL: tuple[faust.TopicT, ...] = (
    declarations,
    dead_letter,
    results,
    state_of_parties,
    alerts,
)

# Sent to, never consumed here: no agent subscribes to them, so Faust would not create them
# and the first send would let the broker auto-create each with its defaults.
OUTPUTS: tuple[faust.TopicT, ...] = (dead_letter, results, state_of_parties, alerts)


@app.task
async def declare_output_topics() -> None:
    """Create the output topics with their partitions when the worker starts (once each)."""
    for topic in OUTPUTS:
        await topic.maybe_declare()
