"""Creating the output topics rides out a broker that is down while the worker starts."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.pipeline import topics as topics_module
from streams.pipeline.topics import declare_until_done


class FlakyTopic:
    """A topic whose broker refuses the first `refusals` attempts to create it."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts = 0

    async def maybe_declare(self) -> None:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")

    def get_topic_name(self) -> str:
        return "night-alerts"


async def test_a_refused_creation_is_asked_again_until_the_broker_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(topics_module, "DECLARE_RETRY_FIRST_S", 0.001)
    monkeypatch.setattr(topics_module, "DECLARE_RETRY_MAX_S", 0.002)
    topic = FlakyTopic(refusals=3)
    await asyncio.wait_for(declare_until_done(topic), timeout=5)  # type: ignore[arg-type]
    assert topic.attempts == 4
    warnings = [r.getMessage() for r in caplog.records if "creating topic" in r.getMessage()]
    assert len(warnings) == 3
    assert "night-alerts" in warnings[0] and "KafkaConnectionError" in warnings[0]


async def test_a_topic_the_broker_creates_at_once_is_asked_once() -> None:
    topic = FlakyTopic(refusals=0)
    await declare_until_done(topic)  # type: ignore[arg-type]
    assert topic.attempts == 1
