"""Every Redis key of an election shares one Cluster hash slot, and every Lua call names one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.crc import key_slot

from streams.pipeline.webhooks import Dispatcher, Policy, Subscriber
from streams.store import keys
from streams.store.keys import OUTBOX, SEAT, TOTALS, election_namespace
from streams.store.outbox import Outbox, Output
from streams.store.tally_store import TallyStore
from tests.store_helpers import apply_batch, record_exit_poll
from tests.unit.tally_fixtures import night
from tests.unit.test_tally_store import ELECTION, pending

PREFIX = "rehearsal:"


def slot(key: str | bytes) -> int:
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def test_the_namespace_carries_the_election_id_as_a_hash_tag() -> None:
    assert election_namespace("", ELECTION) == "election:{parl.2024-07-04}:"
    assert election_namespace(PREFIX, ELECTION) == "rehearsal:election:{parl.2024-07-04}:"
    ns = election_namespace(PREFIX, ELECTION)
    assert slot(ns + SEAT + "E14000530") == slot(ns + OUTBOX) == slot(ELECTION)


def test_a_prefix_with_braces_still_keeps_an_election_in_one_slot() -> None:
    ns = election_namespace("odd{prefix:", ELECTION)
    assert len({slot(ns + suffix) for suffix in (TOTALS, OUTBOX, SEAT + "E1", "}x{y}")}) == 1


def test_every_key_name_is_distinct_and_lands_in_the_election_slot() -> None:
    names = [value for name, value in vars(keys).items() if name.isupper() and name != "DESK_KEPT"]
    assert len(names) == len(set(names)) > 20
    ns = election_namespace(PREFIX, ELECTION)
    subscriber = keys.SubscriberKeys.of(ns, "0123456789abcdef")
    every = [ns + name for name in names]
    every += [subscriber.cursor, subscriber.delivered, subscriber.dead, subscriber.withheld]
    assert {slot(key) for key in every} == {slot(ELECTION)}


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, ...]]]:
    """Every EVAL/EVALSHA sent, whether directly or queued on a pipeline."""
    calls: list[tuple[Any, ...]] = []
    for cls in (Redis, Pipeline):
        original = cls.execute_command

        def recording(self: Any, *args: Any, _original: Any = original, **options: Any) -> Any:
            if str(args[0]).upper() in {"EVAL", "EVALSHA"}:
                calls.append(args)
            return _original(self, *args, **options)

        monkeypatch.setattr(cls, "execute_command", recording)
    yield calls


async def test_every_script_call_routes_by_a_key_of_the_election(
    script_calls: list[tuple[Any, ...]],
) -> None:
    """A Redis Cluster sends a script to the node of its KEYS: none may be empty or elsewhere."""
    redis = fakeredis.FakeAsyncRedis()
    ns = election_namespace(PREFIX, ELECTION)
    store = TallyStore(redis, ELECTION, PREFIX, night().register)
    await record_exit_poll(store, night().exit_poll, "declarations", 0, 0)
    await apply_batch(store, pending(night().declarations[:5], first_offset=1))
    outbox = Outbox(redis, ns)
    alert = Output("alert:a", "alerts", "a", b'{"alert_id": "a"}')
    await outbox.announce_many([(1, [alert]), (2, [])])
    lease = outbox.lease("me", 5_000)
    assert await lease.acquire()
    assert await lease.acquire()  # the renewal is a script
    await outbox.mark_published(1)
    await lease.release()
    policy = Policy(max_attempts=1, backoff_s=0, backoff_max_s=0, timeout_s=1)
    dispatcher = Dispatcher([], redis, ns, policy)
    assert await dispatcher.lease.acquire()
    assert await dispatcher.lease.acquire()
    await dispatcher.stop()
    subscriber = Subscriber("http://example.org/hook", redis, ns, policy, None)  # type: ignore[arg-type]
    await subscriber._move(1, "a", "delivered")

    names = {str(call[0]).upper() for call in script_calls}
    assert names == {"EVAL", "EVALSHA"}
    assert len(script_calls) >= 12
    for call in script_calls:
        numkeys = int(call[2])
        keys = call[3 : 3 + numkeys]
        assert numkeys >= 1, f"a script called with no KEYS cannot be routed: {call[:3]}"
        assert {slot(key) for key in keys} == {slot(ns)}, call[: 3 + numkeys]
    # Everything the calls wrote is in the election's slot too.
    assert {slot(key) for key in await redis.keys("*")} == {slot(ns)}
