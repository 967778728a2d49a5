"""The publisher's Kafka clients: one whose start failed is closed and never kept."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.pipeline import publisher as publisher_module
from streams.pipeline.publisher import Publisher
from streams.settings import Settings


class FakeClient:
    """Stands in for aiokafka's producer and consumer; fails to start `failures` times."""

    failures = 0
    made: ClassVar[list[FakeClient]] = []

    def __init__(self, **options: Any) -> None:
        self.started = self.stopped = False
        FakeClient.made.append(self)

    async def start(self) -> None:
        if FakeClient.failures:
            FakeClient.failures -= 1
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_clients(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.made = []
    FakeClient.failures = 0
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", FakeClient)
    monkeypatch.setattr(publisher_module, "AIOKafkaConsumer", FakeClient)
    return FakeClient


def bare_publisher() -> Publisher:
    # Only what _start_clients reads: no Redis, no reference data.
    publisher = Publisher.__new__(Publisher)
    publisher.settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    publisher.producer = None
    publisher.consumer = None
    return publisher


def test_a_producer_whose_start_failed_is_closed_and_made_afresh_next_time(
    fake_clients: type[FakeClient],
) -> None:
    publisher = bare_publisher()
    fake_clients.failures = 1
    with pytest.raises(KafkaConnectionError):
        asyncio.run(publisher._start_clients())
    # Kept, it would be taken as started: its metadata task never ran, and the next wait
    # on its metadata (partitions_for) would never end.
    assert publisher.producer is None
    [failed] = fake_clients.made
    assert failed.stopped

    asyncio.run(publisher._start_clients())
    assert publisher.producer is not None and publisher.producer is not failed
    assert publisher.consumer is not None
    assert all(client.started for client in fake_clients.made[1:])


def test_a_consumer_whose_start_failed_is_not_kept_beside_a_started_producer(
    fake_clients: type[FakeClient],
) -> None:
    publisher = bare_publisher()
    asyncio.run(publisher._start_clients())
    producer = publisher.producer
    publisher.consumer = None
    fake_clients.failures = 1
    with pytest.raises(KafkaConnectionError):
        asyncio.run(publisher._start_clients())
    assert publisher.consumer is None and fake_clients.made[-1].stopped
    assert publisher.producer is producer  # started before: kept
