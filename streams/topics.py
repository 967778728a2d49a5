"""Kafka topics of the night, named by the settings."""

from __future__ import annotations

import faust

from streams.app import app
from streams.settings import get_settings

settings = get_settings()

declarations: faust.TopicT = app.topic(
    settings.topic_declarations, partitions=settings.topic_partitions
)
accepted: faust.TopicT = app.topic(settings.topic_accepted, partitions=settings.topic_partitions)
dead_letter: faust.TopicT = app.topic(settings.topic_dead_letter, partitions=1)
results: faust.TopicT = app.topic(settings.topic_results, partitions=settings.topic_partitions)
state_of_parties: faust.TopicT = app.topic(settings.topic_state, partitions=1)
alerts: faust.TopicT = app.topic(settings.topic_alerts, partitions=1)

ALL: tuple[faust.TopicT, ...] = (
    declarations,
    accepted,
    dead_letter,
    results,
    state_of_parties,
    alerts,
)
