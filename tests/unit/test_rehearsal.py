"""A rehearsal kept apart from live: inputs by the worker's mode, every output flagged, a
rehearsal's alerts only for the clients that ask for them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import orjson
import pytest

from schemas.declaration import Declaration
from schemas.exit_poll import ExitPoll
from schemas.rejection import RejectionReason
from scripts.night_builder import build_night
from streams.feeds.pa.declarations import declaration_from_pa
from streams.feeds.pa.refusals import Refusal, RefusalReason
from streams.ingest.pa_folder import refusal_letter
from streams.pipeline.publisher import Telling, snapshot_output
from streams.rules import alerts as alert_rules
from streams.rules.alerts.story import NightStory
from streams.rules.rehearsal import Mode
from streams.rules.tally import seat_result, state_of_parties
from streams.rules.validation import Accepted, FeedPosition, Rejected, validate_message
from streams.rules.watchlist import load_watchlist
from streams.settings import Settings
from streams.store.outbox import Outbox, Output
from streams.web.live_feed import KEEP_ALIVE, LiveFeed
from tests.unit.pa_fixtures import mapping, norfolk, read_seat, register, xml_of
from tests.unit.tally_fixtures import DATA_DIR, SOUTH_WEST_NORFOLK, night, recount_notice
from tests.unit.test_live_feed import ids, until
from tests.unit.test_live_page import app, get

NOW = dt.datetime(2024, 7, 5, 12, 0, tzinfo=dt.UTC)


def live(message: Declaration | ExitPoll) -> Declaration | ExitPoll:
    return message.model_copy(update={"rehearsal": False})


def judged(payload: dict[str, Any], mode: Mode, key: bytes | None = None) -> Accepted | Rejected:
    position = FeedPosition("declarations", 0, 9, key)
    return validate_message(orjson.dumps(payload), position, night().register, NOW, mode=mode)


def norfolk_payload() -> dict[str, Any]:
    return orjson.loads(norfolk().model_dump_json())


# ---- inputs: a worker takes only its own mode's ----


def test_an_input_that_does_not_say_is_a_rehearsals() -> None:
    payload = norfolk_payload()
    del payload["rehearsal"]
    verdict = judged(payload, "rehearsal", SOUTH_WEST_NORFOLK.encode())
    assert isinstance(verdict, Accepted) and verdict.message.rehearsal is True
    refused = judged(payload, "live", SOUTH_WEST_NORFOLK.encode())
    assert isinstance(refused, Rejected)
    assert refused.rejection.reason is RejectionReason.WRONG_MODE
    assert refused.rejection.detail == (
        "South West Norfolk (E14001497) revision 1 is a rehearsal message (rehearsal: true) "
        "and this worker is live (ELECTION_MODE=live); not taken"
    )
    # The dead letter is the live worker's output: it says live.
    assert refused.rejection.rehearsal is False


def test_the_live_nights_message_is_refused_by_a_rehearsal_and_taken_live() -> None:
    payload = orjson.loads(live(norfolk()).model_dump_json())
    refused = judged(payload, "rehearsal", SOUTH_WEST_NORFOLK.encode())
    assert isinstance(refused, Rejected)
    assert refused.rejection.reason is RejectionReason.WRONG_MODE
    assert "is a live message (rehearsal: false) and this worker is rehearsal" in (
        refused.rejection.detail
    )
    assert refused.rejection.rehearsal is True
    verdict = judged(payload, "live", SOUTH_WEST_NORFOLK.encode())
    assert isinstance(verdict, Accepted) and verdict.message.rehearsal is False


@pytest.mark.parametrize("mode", ["rehearsal", "live"])
def test_the_exit_poll_too(mode: Mode) -> None:
    poll = night().exit_poll
    other = poll if mode == "live" else live(poll)
    refused = judged(orjson.loads(other.model_dump_json()), mode, b"exit-poll")
    assert isinstance(refused, Rejected)
    assert refused.rejection.reason is RejectionReason.WRONG_MODE
    assert refused.rejection.detail.startswith("the exit poll is a ")
    own = poll if mode == "rehearsal" else live(poll)
    assert isinstance(judged(orjson.loads(own.model_dump_json()), mode, b"exit-poll"), Accepted)


@pytest.mark.parametrize("flag", ["false", 0, None, "no"])
def test_only_a_json_false_is_live(flag: object) -> None:
    payload = {**norfolk_payload(), "rehearsal": flag}
    refused = judged(payload, "live", SOUTH_WEST_NORFOLK.encode())
    assert isinstance(refused, Rejected)
    assert refused.rejection.reason is RejectionReason.SCHEMA_VIOLATION


def test_the_contract_says_an_input_is_a_rehearsal_unless_it_says_otherwise() -> None:
    for model in (Declaration, ExitPoll):
        flag = model.model_json_schema()["properties"]["rehearsal"]
        assert flag["type"] == "boolean" and flag["default"] is True
        assert "ELECTION_MODE" in flag["description"]


def test_a_worker_is_a_rehearsal_unless_told_live() -> None:
    assert Settings().mode == "rehearsal"
    assert Settings().alert_policy().rehearsal is True
    assert Settings(mode="live").alert_policy().rehearsal is False


def test_the_replay_marks_every_message_rehearsal() -> None:
    replayed = build_night(DATA_DIR)
    assert replayed.exit_poll.rehearsal is True
    assert all(d.rehearsal for d in replayed.declarations)
    assert b'"rehearsal":true' in replayed.declarations[0].model_dump_json().encode()


# ---- outputs say what they are ----


@pytest.mark.parametrize("rehearsal", [True, False])
def test_a_seat_result_and_the_state_after_it_carry_the_declarations_flag(rehearsal: bool) -> None:
    declaration = norfolk().model_copy(update={"rehearsal": rehearsal})
    ref = night().register.constituencies[SOUTH_WEST_NORFOLK]
    result = seat_result(declaration, ref, 1)
    assert result.rehearsal is rehearsal
    # A recount notice keeps the figures announced before, and says what it is.
    notice = recount_notice(declaration, 2)
    assert seat_result(notice, ref, 2, previous=result).rehearsal is rehearsal
    telling = Telling(NightStory(night().register, {}))
    snapshot = orjson.loads(snapshot_output(telling, night().register, result).value)
    assert snapshot["rehearsal"] is rehearsal
    assert state_of_parties({}, night().register, 0, None, None).rehearsal is True


def test_alerts_carry_the_workers_mode_under_the_same_ids() -> None:
    register = night().register
    watchlist = load_watchlist(DATA_DIR / "watchlist.csv")
    result = seat_result(norfolk(), register.constituencies[SOUTH_WEST_NORFOLK], 1)
    told = {}
    for mode in ("rehearsal", "live"):
        policy = Settings(mode=mode).alert_policy()
        alerts = alert_rules.seat_change_alerts(result, None, register, watchlist, policy)
        alerts += alert_rules.detect_exit_poll(night().exit_poll, register, policy)
        assert {a.rehearsal for a in alerts} == {mode == "rehearsal"}
        told[mode] = [a.alert_id for a in alerts]
    assert len(told["live"]) >= 3  # Truss defeated, a gain, the exit poll
    assert told["rehearsal"] == told["live"]


def test_pa_declarations_and_refusals_say_their_feeds_kind() -> None:
    message = read_seat(xml_of(norfolk()))
    kind = norfolk().kind
    from_test_data = declaration_from_pa(message, kind, mapping(), register())
    assert isinstance(from_test_data, Declaration) and from_test_data.rehearsal is True
    live_feed = dataclasses.replace(mapping(), feed="live")
    from_live = declaration_from_pa(message, kind, live_feed, register())
    assert isinstance(from_live, Declaration) and from_live.rehearsal is False
    refusal = Refusal(RefusalReason.XML_MALFORMED, "cut short")
    letters = [
        refusal_letter(
            feed.source, feed.rehearsal, "parl.2024-07-04", "f.xml", b"<", 1, refusal, NOW
        )
        for feed in (mapping(), live_feed)
    ]
    assert [letter.rehearsal for letter in letters] == [True, False]


# ---- a rehearsal's alerts only for those who ask ----

NS = app.context.namespace


def alert(alert_id: str, rehearsal: bool) -> Output:
    value = orjson.dumps({"alert_id": alert_id, "occurred_at": None, "rehearsal": rehearsal})
    return Output(f"alert:{alert_id}", "alerts", alert_id, value)


def result(ons_id: str, rehearsal: bool) -> Output:
    value = orjson.dumps({"constituency_id": ons_id, "rehearsal": rehearsal})
    return Output(f"result:{ons_id}:1", "results", ons_id, value)


async def mixed_night(outbox: Outbox) -> None:
    """Entries 1 to 4: a rehearsal's result and alert, then the live night's."""
    await outbox.announce_many(
        [
            (1, [result("E1", True), alert("r", True)]),
            (2, [result("E2", False), alert("l", False)]),
        ]
    )
    await outbox.mark_published(4)


@pytest.fixture
async def server() -> AsyncIterator[fakeredis.FakeServer]:
    yield fakeredis.FakeServer()


async def take(stream: AsyncIterator[bytes], count: int) -> list[int]:
    chunks: list[bytes] = []
    while len(ids(chunks)) < count:
        chunk = await anext(stream)
        if chunk != KEEP_ALIVE:
            chunks.append(chunk)
    return ids(chunks)


@pytest.mark.parametrize("capacity", [1, 100])  # from Redis then the ring; the ring alone
async def test_event_streams_carry_a_rehearsals_alerts_only_to_who_asks(
    server: fakeredis.FakeServer, capacity: int
) -> None:
    await mixed_night(Outbox(fakeredis.FakeAsyncRedis(server=server), NS))
    feed = LiveFeed(lambda: fakeredis.FakeAsyncRedis(server=server), NS, capacity, block_ms=50)
    async with feed.joined():
        await until(lambda: feed.released == 4)
        public = feed.stream(0, {"results", "state", "alerts"}, heartbeat_s=10)
        asked = feed.stream(0, {"results", "state", "alerts"}, 10, rehearsals=True)
        alerts_only = feed.stream(0, {"alerts"}, heartbeat_s=10)
        # Graphics get every result, flagged; the rehearsal's alert (entry 2) is left out.
        assert await take(public, 3) == [1, 3, 4]
        assert await take(asked, 4) == [1, 2, 3, 4]
        assert await take(alerts_only, 1) == [4]
        for stream in (public, asked, alerts_only):
            await stream.aclose()


async def test_the_alerts_list_has_a_rehearsals_alerts_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outbox = Outbox(fakeredis.FakeAsyncRedis(), NS)
    monkeypatch.setattr(app.context, "outbox", outbox)
    await mixed_night(outbox)
    public = orjson.loads((await get("/api/alerts")).body)
    asked = orjson.loads((await get("/api/alerts?rehearsal=1")).body)
    assert [a["alert_id"] for a in public] == ["l"]
    assert [a["alert_id"] for a in asked] == ["r", "l"]
