"""The worker's PA-style XML: the state of the parties and a seat's result, read back by our own
hardened reader with every figure as the JSON API gives it; the views' statuses and headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from defusedxml.ElementTree import fromstring
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from schemas.declaration import Declaration, DeclarationKind
from schemas.results import SeatResult, StateOfParties
from streams.feeds.pa.messages import PaMessageType, PaSeatMessage, PaStateOfParties
from streams.feeds.pa.refusals import Refusal
from streams.feeds.pa.xml_reader import read_message
from streams.feeds.pa.xml_writer import seat_result_xml, state_of_parties_xml
from streams.pipeline.app import create_app
from streams.rules.tally import Contribution, seat_contribution, seat_result, state_of_parties
from streams.settings import Settings
from tests.unit.pa_fixtures import mapping, norfolk, read_seat, register, xml_of
from tests.unit.tally_fixtures import night, recount_notice, revised, rush, tied

# Every attribute a broadcast template reads from PA's state of the parties.
PARTY_ATTRIBUTES = {
    "paId",
    "name",
    "abbreviation",
    "totalSeats",
    "gains",
    "losses",
    "totalVotes",
    "percentageShare",
    "percentageChange",
}
ROOT_ATTRIBUTES = {
    "revision",
    "declarationTime",
    "numberOfResults",
    "totalNumberOfConstituencies",
    "totalVotes",
}
# Percentages of valid votes to two places; the change signed, in points.
SHARE = re.compile(r"[0-9]{1,3}\.[0-9]{2}")
CHANGE = re.compile(r"[+-][0-9]{1,3}\.[0-9]{2}")
XML = "application/xml; charset=utf-8"


def state_after(seats: int) -> StateOfParties:
    """The state of the parties once the night's first `seats` seats have declared."""
    totals: Contribution = {}
    declared = night().declarations[:seats]
    for declaration in declared:
        ref = register().constituencies[declaration.constituency_id]
        for key, value in seat_contribution(declaration, ref).items():
            totals[key] = totals.get(key, 0) + value
    last = declared[-1]
    return state_of_parties(totals, register(), seats, last.declared_at, last.constituency_id)


def read_state(raw: bytes) -> PaStateOfParties:
    message = read_message(raw)
    assert isinstance(message, PaStateOfParties), message
    return message


@pytest.mark.parametrize("seats", [1, 326, 650])
def test_the_state_of_the_parties_carries_every_figure_of_the_json_state(seats: int) -> None:
    state = state_after(seats)
    raw = state_of_parties_xml(state, mapping(), register())
    pa = read_state(raw)
    assert (pa.revision, pa.declaration_time) == (state.sequence, state.as_of)
    assert (pa.number_of_results, pa.total_constituencies, pa.total_votes) == (
        state.seats_declared,
        state.total_seats,
        state.total_votes,
    )
    root = fromstring(raw, forbid_dtd=True)
    assert root.tag == PaMessageType.STATE_OF_PARTIES.value
    assert set(root.attrib) == ROOT_ATTRIBUTES
    elements = root.findall("Parties/Party")
    assert len(elements) == len(pa.parties) == len(state.parties)
    for element, party, tally in zip(elements, pa.parties, state.parties, strict=True):
        assert set(element.attrib) == PARTY_ATTRIBUTES, tally.party
        ours = mapping().party(party.pa_id)
        assert not isinstance(ours, Refusal)
        assert party.pa_id == mapping().totals_party_ids[tally.party]
        assert (ours.abbreviation, party.abbreviation, party.name) == (
            tally.party,
            tally.party,
            tally.name,
        )
        assert (party.total_seats, party.gains, party.losses, party.total_votes) == (
            tally.seats,
            tally.gains,
            tally.losses,
            tally.votes,
        )
        assert tally.share_change is not None
        share, change = element.attrib["percentageShare"], element.attrib["percentageChange"]
        assert SHARE.fullmatch(share) and CHANGE.fullmatch(change), (share, change)
        assert share == f"{tally.share * 100:.2f}"
        assert change == f"{tally.share_change * 100:+.2f}"
        assert party.percentage_share == pytest.approx(tally.share * 100, abs=0.005)
        assert party.percentage_change == pytest.approx(tally.share_change * 100, abs=0.005)


def test_a_state_before_any_figures_leaves_the_change_out() -> None:
    """A rush counts a seat with no votes: no share to change yet, so PA's attribute is absent."""
    first = night().declarations[0]
    ref = register().constituencies[first.constituency_id]
    state = state_of_parties(
        seat_contribution(rush(first), ref), register(), 1, first.declared_at, None
    )
    raw = state_of_parties_xml(state, mapping(), register())
    [winner] = fromstring(raw).findall("Parties/Party")
    assert winner.attrib["totalSeats"] == "1" and winner.attrib["percentageShare"] == "0.00"
    assert "percentageChange" not in winner.attrib
    assert read_state(raw).parties[0].percentage_change is None


def _seat_file(declaration: Declaration, previous: SeatResult | None = None) -> PaSeatMessage:
    ref = register().constituencies[declaration.constituency_id]
    result = seat_result(declaration, ref, 7, previous=previous)
    return read_seat(seat_result_xml(result, mapping(), register()))


def _same_file(ours: PaSeatMessage, sent: PaSeatMessage) -> None:
    """Both say the same, whatever order they list the candidates in."""
    assert (ours.message_type, ours.revision, ours.declaration_time, ours.election) == (
        sent.message_type,
        sent.revision,
        sent.declaration_time,
        sent.election,
    )
    assert replace(ours.constituency, candidates=()) == replace(sent.constituency, candidates=())
    assert sorted(ours.constituency.candidates, key=lambda c: c.pa_id) == sorted(
        sent.constituency.candidates, key=lambda c: c.pa_id
    )


def test_a_stored_result_is_the_pa_file_of_the_declaration_that_made_it() -> None:
    for declaration in night().declarations[::25]:
        ours = _seat_file(declaration)
        assert ours.message_type is PaMessageType.RESULT
        _same_file(ours, read_seat(xml_of(declaration)))


def test_the_result_file_has_every_figure_of_the_json_result() -> None:
    declaration = norfolk()
    result = seat_result(declaration, register().constituencies[declaration.constituency_id], 7)
    raw = seat_result_xml(result, mapping(), register())
    seat = read_seat(raw).constituency
    assert seat.number == mapping().seat_numbers[result.constituency_id]
    assert (seat.name, seat.electorate, seat.turnout, seat.rejected_ballots, seat.majority) == (
        result.constituency_name,
        result.electorate,
        result.valid_votes,
        result.rejected_ballots,
        result.majority,
    )
    assert (seat.gain_or_hold, seat.winning_party, seat.sitting_party) == ("gain", "Lab", "Con")
    for candidate in result.candidates:
        [pa] = [
            c for c in seat.candidates if c.pa_id == mapping().candidate_ids[candidate.person_id]
        ]
        assert (pa.name, pa.elected, pa.party.abbreviation, pa.party.votes) == (
            candidate.name,
            candidate.elected,
            candidate.party,
            candidate.votes,
        )
        assert candidate.share is not None
        assert pa.party.percentage_share == pytest.approx(candidate.share * 100, abs=0.005)
    shares = re.findall(rb'percentageShare="([^"]*)"', raw)
    assert shares and all(SHARE.fullmatch(share.decode()) for share in shares)


@pytest.mark.parametrize(
    ("made", "root"),
    [
        (lambda d: rush(d), PaMessageType.RUSH),
        (lambda d: revised(d, 2, DeclarationKind.CORRECTION), PaMessageType.RESULT),
        (lambda d: tied(d), PaMessageType.RESULT),
        (lambda d: recount_notice(d, 2), PaMessageType.RECOUNT),
    ],
    ids=["rush", "correction", "tie", "recount-first"],
)
def test_a_rush_correction_tie_or_recount_is_written_as_pa_sends_it(
    made: Any, root: PaMessageType
) -> None:
    declaration = made(norfolk())
    ours = _seat_file(declaration)
    assert ours.message_type is root
    _same_file(ours, read_seat(xml_of(declaration)))


def test_a_recount_after_a_result_is_pa_s_notice_though_our_result_keeps_the_figures() -> None:
    ref = register().constituencies[norfolk().constituency_id]
    before = seat_result(norfolk(), ref, 6)
    notice = recount_notice(norfolk(), 2)
    stored = seat_result(notice, ref, 7, previous=before)
    assert stored.recount and stored.winner is not None  # the JSON keeps what was announced
    ours = _seat_file(notice, previous=before)
    assert ours.message_type is PaMessageType.RECOUNT
    assert not any(c.elected or c.party.votes is not None for c in ours.constituency.candidates)
    _same_file(ours, read_seat(xml_of(notice)))


# ---- the views ----


class FakeStore:
    """The reads the PA views make, without Redis: the night's first 100 seats."""

    def __init__(self) -> None:
        self.state_reads = 0

    async def sequence(self) -> int:
        return 100

    async def state(self, register: Any = None) -> StateOfParties:
        self.state_reads += 1
        return state_after(100)

    async def seat(self, ons_id: str) -> SeatResult | None:
        declared = {d.constituency_id: d for d in night().declarations[:100]}
        if ons_id not in declared:
            return None
        return seat_result(declared[ons_id], register().constituencies[ons_id], 5)


@asynccontextmanager
async def serving(
    monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> AsyncIterator[tuple[TestClient[Any, Any], FakeStore]]:
    app = create_app(Settings(**settings))
    store = FakeStore()
    monkeypatch.setattr(app.context, "store", store, raising=False)
    monkeypatch.setattr(app.context, "register", register(), raising=False)
    web = cast(AiohttpWeb, app.web)
    web.init_server()
    async with TestClient(TestServer(web.web_app)) as client:
        yield client, store


async def test_the_state_of_the_parties_is_served_as_pa_xml_once_per_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(monkeypatch) as (client, store):
        response = await client.get("/api/pa/state-of-parties.xml")
        assert response.status == 200
        assert response.headers["Content-Type"] == XML
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        body = await response.read()
        assert body == state_of_parties_xml(state_after(100), mapping(), register())
        again = await client.get(
            "/api/pa/state-of-parties.xml", headers={"If-None-Match": response.headers["ETag"]}
        )
        assert again.status == 304
        assert store.state_reads == 1  # built once for the sequence, served from the cache


async def test_a_seat_is_served_as_pa_xml_and_a_bad_or_unknown_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = night().declarations[0]
    async with serving(monkeypatch) as (client, _):
        response = await client.get(f"/api/pa/seats/{first.constituency_id}.xml")
        assert response.status == 200
        assert response.headers["Content-Type"] == XML
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        _same_file(read_seat(await response.read()), read_seat(xml_of(first)))
        undeclared = night().declarations[-1].constituency_id
        for path, status in [
            (f"/api/pa/seats/{undeclared}.xml", 404),
            ("/api/pa/seats/E14009999.xml", 404),
            ("/api/pa/seats/nonsense.xml", 400),
            ("/api/pa/seats/e14001497.xml", 400),
            ("/api/pa/seats/E1400149%3Cx.xml", 400),
        ]:
            refused = await client.get(path)
            assert refused.status == status, path
            assert "error" in await refused.json()


async def test_the_pa_views_are_open_to_graphics_pages_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin = "https://graphics.example.org"
    async with serving(monkeypatch) as (client, _):
        response = await client.get("/api/pa/state-of-parties.xml", headers={"Origin": origin})
        assert response.headers["Access-Control-Allow-Origin"] == origin
        asked = {"Origin": origin, "Access-Control-Request-Method": "GET"}
        preflight = await client.options("/api/pa/seats/E14001497.xml", headers=asked)
        assert preflight.status == 200


async def test_a_feed_with_no_mapping_is_a_503_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(monkeypatch, pa_output_feed="no-such-feed") as (client, _):
        response = await client.get("/api/pa/state-of-parties.xml")
        assert response.status == 503
        assert "no-such-feed" in (await response.json())["error"]
