"""The outbox queues each change's outputs once and each output id once, whatever retries."""

from __future__ import annotations

import fakeredis
import pytest

from streams.pipeline.publisher import outbox_lost_writes
from streams.store.keys import ANNOUNCED_IDS, election_namespace
from streams.store.outbox import Outbox, OutboxProgress, Output, QueuedOutput
from tests.store_helpers import announce


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(fakeredis.FakeAsyncRedis(), election_namespace("test:", "parl.2024-07-04"))


def alert(output_id: str) -> Output:
    return Output(output_id=output_id, topic="alerts", key=output_id, value=b"{}")


async def test_a_change_announced_twice_is_queued_once(outbox: Outbox) -> None:
    assert await announce(outbox, 1, [alert("a"), alert("b")]) == 2
    assert await announce(outbox, 1, [alert("a"), alert("b")]) == 0
    assert [q.output.output_id for q in await outbox.read(after=0)] == ["a", "b"]
    assert await outbox.announced() == 1


async def test_an_alert_id_is_never_queued_twice_even_from_another_change(outbox: Outbox) -> None:
    await announce(outbox, 1, [alert("a")])
    assert await announce(outbox, 2, [alert("a"), alert("c")]) == 1
    assert [q.sequence for q in await outbox.read(after=0)] == [1, 2]


async def test_reading_resumes_after_a_sequence(outbox: Outbox) -> None:
    await announce(outbox, 1, [alert("a"), alert("b"), alert("c")])
    assert [q.output.output_id for q in await outbox.read(after=1)] == ["b", "c"]
    assert [q.output.output_id for q in await outbox.wait_for(2, block_ms=10)] == ["c"]


async def test_the_published_cursor_never_moves_back(outbox: Outbox) -> None:
    await outbox.mark_published(5)
    await outbox.mark_published(3)
    assert await outbox.published() == 5


async def test_only_one_publisher_holds_the_lock(outbox: Outbox) -> None:
    first, second = outbox.lease("worker-1", 10_000), outbox.lease("worker-2", 10_000)
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.acquire()  # renewal by the holder
    await second.release()  # not its lease: nothing happens
    assert not await second.acquire()
    await first.release()
    assert await second.acquire()


async def test_progress_reads_the_three_cursors(outbox: Outbox) -> None:
    assert await outbox.progress() == OutboxProgress(announced=0, queued=0, published=0)
    await announce(outbox, 4, [alert("a"), alert("b"), alert("c")])
    await outbox.mark_published(2)
    assert await outbox.progress() == OutboxProgress(announced=4, queued=3, published=2)


async def test_a_held_outbox_queues_nothing_until_announcing_resumes(outbox: Outbox) -> None:
    """As during a rebuild: outputs found on Kafka are never queued again after it."""
    await outbox.hold_announcing()
    assert await announce(outbox, 1, [alert("a")]) == 0
    await outbox.count_as_sent([f"sent-{n}" for n in range(2500)] + ["a"])
    async with outbox.redis.pipeline(transaction=True) as pipe:
        outbox.resume_announcing(pipe)
        await pipe.execute()
    assert await outbox.announced() == 0
    assert await announce(outbox, 1, [alert("a"), alert("b")]) == 1
    assert [q.output.output_id for q in await outbox.read(after=0)] == ["b"]
    assert await outbox.redis.scard(outbox.ns + ANNOUNCED_IDS) == 2502  # type: ignore[misc]


async def test_the_epoch_is_stable_until_a_reset(outbox: Outbox) -> None:
    first = await outbox.epoch()
    assert first and await outbox.epoch() == first
    await outbox.redis.flushall()
    assert await outbox.epoch() != first


async def test_a_restored_history_keeps_its_sequences_epoch_and_cursors(outbox: Outbox) -> None:
    restored = [QueuedOutput(n, alert(f"alert:{n}")) for n in (3, 4, 9)]
    await outbox.restore("epoch-1", restored)
    assert await outbox.read(after=0) == restored
    assert await outbox.read(after=4) == restored[2:]
    assert await outbox.epoch() == "epoch-1"
    # Everything restored is on Kafka already: nothing for a publisher to send again, and
    # the next output queued follows the newest restored.
    assert await outbox.progress() == OutboxProgress(announced=0, queued=9, published=9)
    assert await announce(outbox, 1, [alert("new")]) == 1
    assert [q.sequence for q in await outbox.read(after=9)] == [10]


async def test_a_history_longer_than_one_script_is_restored_whole_in_order(
    outbox: Outbox,
) -> None:
    restored = [QueuedOutput(n, alert(f"alert:{n}")) for n in range(2, 5004, 2)]
    await outbox.restore("", restored)  # an epoch the outputs did not name still sets cursors
    read: list[QueuedOutput] = []
    while batch := await outbox.read(after=read[-1].sequence if read else 0, count=1000):
        read += batch
    assert read == restored
    assert await outbox.progress() == OutboxProgress(announced=0, queued=5002, published=5002)


async def test_restoring_nothing_leaves_the_outbox_as_it_was(outbox: Outbox) -> None:
    await outbox.restore("", [])
    assert await outbox.progress() == OutboxProgress(announced=0, queued=0, published=0)
    assert await outbox.read(after=0) == []


def test_kafka_past_the_outbox_is_lost_writes_and_behind_it_is_not() -> None:
    assert outbox_lost_writes({4, 5, 9}, queued=8)  # entry 9 sent, Redis queued up to 8 only
    assert not outbox_lost_writes({4, 5, 8}, queued=8)
    assert not outbox_lost_writes({3}, queued=8)  # a crash before the rest were sent
    assert not outbox_lost_writes(set(), queued=0)  # a fresh night
