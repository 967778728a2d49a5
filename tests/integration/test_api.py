"""The worker's HTTP API after a real replay: schemas, ETags, CORS, health, 404s and SSE."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from defusedxml.ElementTree import fromstring
from jsonschema import Draft202012Validator, FormatChecker

from schemas.generate import SCHEMAS_DIR
from scripts.replay import build_outgoing
from scripts.state_view import SseEvent, parse_sse
from streams.feeds.pa.mapping import load_feed_mapping
from streams.feeds.pa.messages import PaMessageType, PaSeatMessage, PaStateOfParties
from streams.feeds.pa.xml_reader import read_message
from streams.rules.reference import Register, load_register
from tests.integration.helpers import WorkerProcess
from tests.integration.pipeline import DATA_DIR, Pipeline, module_pipeline
from tests.unit.ge2024 import OFFICIAL_SEATS
from tests.unit.test_pa_output import PARTY_ATTRIBUTES, ROOT_ATTRIBUTES

JSON_DIR = SCHEMAS_DIR / "json"
SOUTH_WEST_NORFOLK = "E14001497"
UNKNOWN_SEAT = "E14009999"
# Every request comes as a graphics page on another origin would send it.
GRAPHICS = "https://graphics.example.org"
# The replayed night is a rehearsal: a newsroom's client asks for its alerts.
REHEARSALS = {"rehearsal": "1"}

# jsonschema checks date-time only with an optional package; this is the rule that matters.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _aware_datetime(value: object) -> bool:
    return not isinstance(value, str) or dt.datetime.fromisoformat(value).tzinfo is not None


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((JSON_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FORMATS)


STATE = validator("state_of_parties")
SEAT = validator("seat_result")
ALERT = validator("alert")


# ---- one worker and one replayed night for the whole module ----


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, redis_url: str) -> Iterator[Pipeline]:
    with module_pipeline(kafka_bootstrap, redis_url, "api") as made:
        yield made


@pytest.fixture(scope="module")
def worker(pipeline: Pipeline, register: Register) -> Iterator[WorkerProcess]:
    with pipeline.worker("api") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(build_outgoing(DATA_DIR))
        pipeline.wait_until_published(register)
        yield worker


@pytest.fixture(scope="module")
def api(worker: WorkerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.base_url, timeout=30, headers={"Origin": GRAPHICS}) as client:
        yield client


def assert_valid(schema: Draft202012Validator, document: Any, what: str) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(document)]
    assert not errors, f"{what}: {errors[:5]}"


def assert_cors(response: httpx.Response) -> None:
    # ELECTION_CORS_ALLOW_ORIGIN is "*": aiohttp-cors answers with the request's own Origin.
    assert response.headers.get("Access-Control-Allow-Origin") == GRAPHICS, response.headers
    assert "ETag" in response.headers["Access-Control-Expose-Headers"].split(",")
    assert "Origin" in response.headers["Vary"]


# ---- snapshots ----


def test_state_is_the_official_result(api: httpx.Client) -> None:
    response = api.get("/api/state")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert_cors(response)
    state = response.json()
    assert_valid(STATE, state, "state")
    assert state["seats_declared"] == 650
    assert state["majority_party"] == "Lab"
    assert {p["party"]: p["seats"] for p in state["parties"] if p["seats"]} == OFFICIAL_SEATS
    # Issue 23: the projection beside the exit poll; with every seat in, it is the result.
    projection = state["projection"]
    assert projection["seats_declared"] == projection["seats_with_figures"] == 650
    assert {p["party"]: p["seats"] for p in projection["parties"]} == OFFICIAL_SEATS
    assert {p["party"]: p["exit_poll"] for p in projection["parties"]}["Lab"] == 410


def test_every_seat_is_a_seat_result(api: httpx.Client, register: Register) -> None:
    response = api.get("/api/seats")
    assert response.status_code == 200
    assert_cors(response)
    seats = response.json()
    assert set(seats) == set(register.constituencies)
    for ons_id, seat in seats.items():
        assert_valid(SEAT, seat, ons_id)
        assert seat["constituency_id"] == ons_id


def test_one_seat(api: httpx.Client) -> None:
    response = api.get(f"/api/seats/{SOUTH_WEST_NORFOLK}")
    assert response.status_code == 200
    assert_cors(response)
    seat = response.json()
    assert_valid(SEAT, seat, SOUTH_WEST_NORFOLK)
    assert seat["constituency_name"] == "South West Norfolk"
    assert seat["winning_party"] == "Lab" and seat["majority"] == 630


def _night_order(seat: dict[str, Any]) -> tuple[float, str, str]:
    """The night's order: declaration time, then name, then id (/api/declarations reverses it)."""
    declared = dt.datetime.fromisoformat(seat["declared_at"]).timestamp()
    return (declared, seat["constituency_name"], seat["constituency_id"])


def test_latest_declarations_newest_first(api: httpx.Client) -> None:
    response = api.get("/api/declarations")
    assert response.status_code == 200
    assert_cors(response)
    latest = response.json()
    assert isinstance(latest, list) and len(latest) == 20
    for seat in latest:
        assert_valid(SEAT, seat, seat.get("constituency_id", "?"))
    assert latest == sorted(latest, key=_night_order, reverse=True)
    assert latest[0]["constituency_name"] == "Inverness, Skye and West Ross-shire"
    assert len(api.get("/api/declarations", params={"limit": 5}).json()) == 5
    every = api.get("/api/declarations", params={"limit": 10_000}).json()
    assert len(every) == 650
    assert every == sorted(every, key=_night_order, reverse=True)
    assert every[-1]["constituency_name"] == "Houghton and Sunderland South"


def test_alerts(api: httpx.Client) -> None:
    response = api.get("/api/alerts", params=REHEARSALS)
    assert response.status_code == 200
    assert_cors(response)
    alerts = response.json()
    assert isinstance(alerts, list) and alerts
    for alert in alerts:
        assert_valid(ALERT, alert, alert.get("alert_id", "?"))
    types = [a["type"] for a in alerts]
    assert types.count("majority_won") == 1
    assert types.count("last_declaration") == 1
    assert "former_prime_minister_defeated" in types
    # Oldest first by the time of what they tell, then outbox sequence: the exit poll first.
    order = [(dt.datetime.fromisoformat(a["occurred_at"]), a["sequence"]) for a in alerts]
    assert order == sorted(order)
    assert types[0] == "exit_poll"
    assert types.index("first_declaration") < types.index("majority_won")


# ---- PA's XML ----

PA_XML = "application/xml; charset=utf-8"


def test_the_pa_state_of_the_parties_is_the_json_state_party_by_party(
    api: httpx.Client, register: Register
) -> None:
    state = api.get("/api/state").json()
    response = api.get("/api/pa/state-of-parties.xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == PA_XML
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Election-Rehearsal"] == str(state["rehearsal"]).lower()
    assert_cors(response)
    root = fromstring(response.content, forbid_dtd=True)
    assert root.tag == PaMessageType.STATE_OF_PARTIES.value
    assert set(root.attrib) == ROOT_ATTRIBUTES
    elements = root.findall("Parties/Party")
    assert elements and all(set(e.attrib) == PARTY_ATTRIBUTES for e in elements)
    pa = read_message(response.content)
    assert isinstance(pa, PaStateOfParties), pa
    assert pa.revision == state["sequence"]
    assert pa.declaration_time == dt.datetime.fromisoformat(state["as_of"])
    assert (pa.number_of_results, pa.total_constituencies, pa.total_votes) == (
        state["seats_declared"],
        state["total_seats"],
        state["total_votes"],
    )
    mapping = load_feed_mapping(DATA_DIR, "rehearsal", register)
    ours = {
        p["party"]: (
            p["name"],
            p["seats"],
            p["gains"],
            p["losses"],
            p["votes"],
            f"{p['share'] * 100:.2f}",
            f"{p['share_change'] * 100:+.2f}",
        )
        for p in state["parties"]
    }
    theirs = {
        mapping.parties[p.pa_id].abbreviation: (
            p.name,
            p.total_seats,
            p.gains,
            p.losses,
            p.total_votes,
            e.attrib["percentageShare"],
            e.attrib["percentageChange"],
        )
        for p, e in zip(pa.parties, elements, strict=True)
    }
    assert theirs == ours
    assert {code: figures[1] for code, figures in theirs.items() if figures[1]} == OFFICIAL_SEATS


def test_a_pa_seat_is_its_json_result(api: httpx.Client, register: Register) -> None:
    seat = api.get(f"/api/seats/{SOUTH_WEST_NORFOLK}").json()
    response = api.get(f"/api/pa/seats/{SOUTH_WEST_NORFOLK}.xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == PA_XML
    assert_cors(response)
    pa = read_message(response.content)
    assert isinstance(pa, PaSeatMessage), pa
    assert (pa.message_type, pa.revision) == (PaMessageType.RESULT, seat["revision"])
    mapping = load_feed_mapping(DATA_DIR, "rehearsal", register)
    constituency = pa.constituency
    assert mapping.ons_ids[constituency.number] == SOUTH_WEST_NORFOLK
    assert (constituency.majority, constituency.turnout, constituency.winning_party) == (
        seat["majority"],
        seat["valid_votes"],
        seat["winning_party"],
    )
    assert {
        mapping.candidates[c.pa_id].person_id: c.party.votes for c in constituency.candidates
    } == {c["person_id"]: c["votes"] for c in seat["candidates"]}


@pytest.mark.parametrize(
    ("path", "status"),
    [(f"/api/pa/seats/{UNKNOWN_SEAT}.xml", 404), ("/api/pa/seats/nonsense.xml", 400)],
)
def test_an_unknown_or_malformed_pa_seat_is_refused(
    api: httpx.Client, path: str, status: int
) -> None:
    response = api.get(path)
    assert response.status_code == status
    assert "error" in response.json()


# ---- HTTP behaviour ----


@pytest.mark.parametrize(
    "path",
    [
        "/api/state",
        "/api/seats",
        f"/api/seats/{SOUTH_WEST_NORFOLK}",
        "/api/declarations",
        "/api/alerts",
        "/api/pa/state-of-parties.xml",
        f"/api/pa/seats/{SOUTH_WEST_NORFOLK}.xml",
    ],
)
def test_an_unchanged_resource_answers_304(api: httpx.Client, path: str) -> None:
    first = api.get(path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = api.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert_cors(again)
    stale = api.get(path, headers={"If-None-Match": '"not-this-one"'})
    assert stale.status_code == 200
    assert stale.content == first.content


@pytest.mark.parametrize(
    ("path", "header"),
    [("/api/state", "If-None-Match"), ("/api/alerts/events", "Last-Event-ID")],
)
def test_a_preflight_from_a_graphics_page_is_answered(
    api: httpx.Client, path: str, header: str
) -> None:
    asked = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": header}
    response = api.options(path, headers=asked)
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == GRAPHICS
    assert response.headers["Access-Control-Allow-Methods"] == "GET"
    assert response.headers["Access-Control-Allow-Headers"].lower() == header.lower()
    refused = api.options(path, headers={"Access-Control-Request-Method": "DELETE"})
    assert refused.status_code == 403


def test_health_says_kafka_and_redis_are_fine(api: httpx.Client) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["kafka"] == {"ok": True, "error": None}
    assert health["redis"] == {"ok": True, "error": None}
    assert health["election_id"] == "parl.2024-07-04"


@pytest.mark.parametrize("path", [f"/api/seats/{UNKNOWN_SEAT}", "/api/seats/nonsense"])
def test_an_unknown_seat_is_404_json(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert_cors(response)
    assert "no constituency" in response.json()["error"]


# ---- server-sent events ----


def read_events(
    api: httpx.Client,
    path: str,
    count: int,
    headers: dict[str, str] | None = None,
    states: int = 0,
) -> tuple[httpx.Response, list[SseEvent]]:
    """The first `count` events of a stream (and on until `states` state events), then hang up."""
    events: list[SseEvent] = []
    seen_states = 0
    with api.stream("GET", path, headers=headers or {}, timeout=30) as response:
        for event in parse_sse(response.iter_lines()):
            events.append(event)
            seen_states += event.event == "state"
            if len(events) >= count and seen_states >= states:
                break
    return response, events


def test_events_stream_states_with_ids(api: httpx.Client) -> None:
    # A snapshot follows each run of changes published together, so a replay at full speed
    # has far fewer snapshots than results: read on until there are three.
    response, events = read_events(api, "/api/events", 60, states=3)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert_cors(response)
    assert {e.event for e in events} <= {"result", "state", "alert"}
    states = [e for e in events if e.event == "state"]
    assert len(states) >= 3
    ids = [int(e.id or "0") for e in events]
    assert all(e.id for e in events), "every event carries an id: line"
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    sequences = []
    for event in states:
        state = json.loads(event.data)
        assert_valid(STATE, state, f"state event {event.id}")
        sequences.append(state["sequence"])
    assert sequences == sorted(sequences)

    # Resuming from an id gives exactly what followed it.
    middle = events[len(events) // 2]
    _, resumed = read_events(api, "/api/events", 10, headers={"Last-Event-ID": middle.id or ""})
    following = events[len(events) // 2 + 1 :][:10]
    assert [(e.id, e.event, e.data) for e in resumed] == [
        (e.id, e.event, e.data) for e in following
    ]


def test_a_rehearsal_says_so_and_its_alerts_reach_only_who_asks(api: httpx.Client) -> None:
    assert api.get("/api/state").json()["rehearsal"] is True
    seat = api.get(f"/api/seats/{SOUTH_WEST_NORFOLK}").json()
    assert seat["rehearsal"] is True
    # An app's public feed asks for nothing: it is told none of a rehearsal's alerts.
    assert api.get("/api/alerts").json() == []
    asked = api.get("/api/alerts", params=REHEARSALS).json()
    assert asked and {alert["rehearsal"] for alert in asked} == {True}


def test_alert_events_are_alerts_only(api: httpx.Client) -> None:
    response, events = read_events(api, "/api/alerts/events?rehearsal=1", 5)
    assert response.status_code == 200
    assert_cors(response)
    assert [e.event for e in events] == ["alert"] * 5
    for event in events:
        assert event.id
        assert_valid(ALERT, json.loads(event.data), f"alert event {event.id}")


def test_an_alert_client_that_reconnects_with_last_event_id_misses_nothing(
    api: httpx.Client,
) -> None:
    every = api.get("/api/alerts", params=REHEARSALS).json()
    assert len(every) > 40
    received: list[SseEvent] = []
    last_id = ""
    # Drop the connection four times mid-night, each time resuming from the last id seen.
    for chunk in (7, 11, 13, 5):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        _, events = read_events(api, "/api/alerts/events?rehearsal=1", chunk, headers=headers)
        received += events
        last_id = events[-1].id or ""
    rest = len(every) - len(received)
    _, events = read_events(
        api, "/api/alerts/events?rehearsal=1", rest, headers={"Last-Event-ID": last_id}
    )
    received += events
    # The stream is in outbox order; /api/alerts in occurred_at order.
    queued = sorted(every, key=lambda a: a["sequence"])
    assert [int(e.id or "0") for e in received] == [a["sequence"] for a in queued]
    assert [json.loads(e.data)["alert_id"] for e in received] == [a["alert_id"] for a in queued]
