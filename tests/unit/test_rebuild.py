"""What a rebuild counts as already sent: the publisher's own output ids, read off Kafka."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import fakeredis
import orjson
import pytest

from streams.pipeline.publisher import Telling, into_story, tell, tell_moments
from streams.rules.alerts.story import NightStory
from streams.rules.tally import seat_contribution, seat_result
from streams.rules.watchlist import load_watchlist
from streams.settings import Settings
from streams.store import rebuild as rebuild_module
from streams.store.keys import STATE_MARKER
from streams.store.rebuild import (
    RebuildReport,
    _lost_writes,
    consumed_before,
    ensure_state,
    history_to_restore,
    outputs_on_kafka,
)
from streams.store.tally_store import Change
from tests.unit.tally_fixtures import DATA_DIR, SOUTH_WEST_NORFOLK, declaration_of, night

ELECTION = "parl.2024-07-04"


def records(*values: Any) -> list[Any]:
    return [
        SimpleNamespace(
            value=v if isinstance(v, bytes) else orjson.dumps(v), key=None, headers=(), timestamp=0
        )
        for v in values
    ]


def test_alerts_and_results_of_this_election_only_and_every_snapshot_up_to_the_newest() -> None:
    alerts = records(
        {"election_id": ELECTION, "alert_id": "a1"},
        {"election_id": "parl.2019-12-12", "alert_id": "old"},
        b"not json",
        {"election_id": ELECTION, "alert_id": "a2"},
    )
    assert outputs_on_kafka("alerts", alerts, ELECTION).ids == ["alert:a1", "alert:a2"]
    results = records({"election_id": ELECTION, "constituency_id": "E1", "revision": 2})
    assert outputs_on_kafka("results", results, ELECTION).ids == ["result:E1:2"]
    # A rebuilt change log numbers its changes anew: every sequence up to the newest counts.
    states = records(
        {"election_id": ELECTION, "message_type": "state_of_parties", "sequence": 3},
        {"election_id": ELECTION, "message_type": "state_of_parties", "sequence": 2},
    )
    assert outputs_on_kafka("state", states, ELECTION).ids == ["state:1", "state:2", "state:3"]
    assert outputs_on_kafka("state", [], ELECTION).ids == []


async def _none(sequences: set[int]) -> dict[int, Any]:
    raise AssertionError(f"every result needed was at hand: {sequences}")


async def test_the_ids_read_off_kafka_are_the_ones_the_publisher_dedupes_by() -> None:
    """Built from one real change's outputs, as they would be on Kafka: every id is found."""
    register = night().register
    declaration = declaration_of(SOUTH_WEST_NORFOLK)
    ref = register.constituencies[SOUTH_WEST_NORFOLK]
    delta = dict(seat_contribution(declaration, ref, None))
    change = Change(1, seat_result(declaration, ref, 1), None, delta)
    policy = Settings().alert_policy()
    telling = Telling(NightStory(register))
    [(_, outputs)] = tell(
        telling, [change], register, load_watchlist(DATA_DIR / "watchlist.csv"), policy
    )
    # The first declaration's moment, told as the watermark passes it.
    into_story(telling, None)
    moments, _ = await tell_moments(telling, None, {1: change.result}, _none, policy)
    outputs = outputs + moments
    assert {output.topic for output in outputs} == {"results", "state", "alerts"}
    assert any(output.topic == "alerts" for output in outputs)
    found = []
    for topic in ("results", "state", "alerts"):
        on_kafka = records(*(o.value for o in outputs if o.topic == topic))
        found += outputs_on_kafka(topic, on_kafka, ELECTION).ids
    assert sorted(found) == sorted(output.output_id for output in outputs)


def test_the_summary_names_messages_time_and_what_is_not_sent_again() -> None:
    report = RebuildReport(messages=651, partitions=4, seconds=0.31)
    report.outcomes.update({"applied": 650, "exit_poll_applied": 1})
    report.already_sent.update({"alerts": 362})
    assert report.summary(ELECTION, "declarations") == (
        "rebuilt parl.2024-07-04 from 651 messages of declarations (4 partitions) in "
        "0.31s: 650 applied, 1 exit_poll_applied; already on Kafka, not sent again: 362 alerts"
    )


def test_lost_writes_are_a_batch_starting_past_what_redis_recorded() -> None:
    fresh, reset = orjson.dumps({"how": "fresh"}), orjson.dumps({"how": "reset"})
    batch = {"accepted:0": 10, "accepted:1": 0}
    assert not _lost_writes(fresh, [b"9", None], batch)  # the next one, and a first message
    assert not _lost_writes(fresh, [b"12", None], batch)  # a redelivery
    assert _lost_writes(fresh, [b"8", None], batch)  # offset 9 applied, then lost
    assert _lost_writes(fresh, [None, None], batch)  # nothing recorded, offset 10 next
    assert not _lost_writes(reset, [None, None], batch)  # emptied on purpose


async def test_a_state_lost_before_any_commit_is_rebuilt_not_taken_for_a_fresh_night(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Half a night consumed in under a commit interval, then Redis lost: no offset is
    committed yet, but the next batch starts past offset 0, so the state is rebuilt."""
    rebuilt: list[str] = []

    async def never_committed(settings: Settings) -> bool:
        return False

    async def rebuild_once(store: Any, settings: Settings, register: Any) -> None:
        rebuilt.append(store.ns)

    monkeypatch.setattr(rebuild_module, "group_has_committed", never_committed)
    monkeypatch.setattr(rebuild_module, "_rebuild_once", rebuild_once)
    redis = fakeredis.aioredis.FakeRedis()
    store = SimpleNamespace(redis=redis, ns="t:")
    settings = Settings()
    await ensure_state(store, settings, None, {"declarations:0": 0})  # type: ignore[arg-type]
    assert rebuilt == [] and await redis.get("t:" + STATE_MARKER) is not None  # a fresh night
    await redis.delete("t:" + STATE_MARKER)
    await ensure_state(store, settings, None, {"declarations:0": 0, "declarations:1": 163})  # type: ignore[arg-type]
    assert rebuilt == ["t:"]
    assert consumed_before({"declarations:0": 1}) and not consumed_before({"declarations:0": 0})


def sent(topic: str, value: dict[str, Any], sequence: str | None, epoch: str, at: int) -> Any:
    headers = [("outbox-epoch", epoch.encode())]
    if sequence is not None:
        headers.append(("outbox-seq", sequence.encode()))
    return SimpleNamespace(
        key=b"k", value=orjson.dumps(value), headers=headers, timestamp=at, topic=topic
    )


def test_the_history_restored_is_the_latest_epoch_once_each_in_sequence_order() -> None:
    alert = {"election_id": ELECTION, "alert_id": "a"}
    found = outputs_on_kafka(
        "alerts",
        [
            sent("alerts", {**alert, "alert_id": "old"}, "1", "before-reset", at=1),
            sent("alerts", {**alert, "alert_id": "b"}, "7", "night", at=30),
            sent("alerts", {**alert, "alert_id": "a"}, "2", "night", at=20),
            sent("alerts", {**alert, "alert_id": "a"}, "2", "night", at=21),  # sent twice
            sent("alerts", {**alert, "alert_id": "no-sequence"}, None, "night", at=22),
            sent("alerts", {**alert, "election_id": "other"}, "3", "night", at=23),
        ],
        ELECTION,
    ).sent
    found += outputs_on_kafka(
        "state",
        [
            sent(
                "state",
                {"election_id": ELECTION, "message_type": "state_of_parties", "sequence": 4},
                "5",
                "night",
                at=25,
            )
        ],
        ELECTION,
    ).sent
    epoch, history = history_to_restore(found)
    assert epoch == "night"
    assert [(q.sequence, q.output.output_id, q.output.topic) for q in history] == [
        (2, "alert:a", "alerts"),
        (5, "state:4", "state"),
        (7, "alert:b", "alerts"),
    ]
    assert history_to_restore([]) == ("", [])
