"""Several sources per seat: precedence in the store, every source kept, conflicts told once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import fakeredis
import orjson
import pytest
from redis.asyncio import Redis

from schemas.declaration import Declaration, DeclarationKind
from schemas.source_conflict import SourceConflict
from streams.pipeline.publisher import Telling, result_output, tell
from streams.rules.alerts.story import NightStory
from streams.rules.sources import (
    AGREED,
    SUPERSEDED,
    SourceRules,
    conflict_turns,
    differences,
    source_name,
    source_rank,
    source_view,
)
from streams.rules.tally import seat_result
from streams.rules.watchlist import load_watchlist
from streams.settings import Settings
from streams.store.outbox import Output
from streams.store.rebuild import outputs_on_kafka
from streams.store.tally_store import Change, PendingApply, TallyStore
from tests.unit.tally_fixtures import (
    DATA_DIR,
    SOUTH_WEST_NORFOLK,
    TRUSS,
    declaration_of,
    misreported,
    night,
    recount_notice,
    revised,
)

ELECTION = "parl.2024-07-04"
JERMY = 20757
RULES = SourceRules()


def records(*values: bytes) -> list[Any]:
    """Values as Kafka records, as a rebuild reads them off an output topic."""
    return [SimpleNamespace(value=value, key=None, headers=(), timestamp=0) for value in values]


def _from(declaration: Declaration, source: str, revision: int = 1) -> Declaration:
    return declaration.model_copy(update={"source": source, "revision": revision})


def test_a_source_is_named_by_what_comes_before_its_colon() -> None:
    assert source_name("pa:rehearsal") == "pa"
    assert source_name("replay:ge2024") == "replay"
    assert source_name("Desk") == "desk"
    # Nothing but letters, digits, - and _: the name goes into JSON Lua builds by hand.
    assert source_name('ag"en}cy,x:1') == "agencyx"
    assert source_name(":") == "unnamed"


def test_listed_sources_rank_in_order_and_the_rest_after_them_by_name() -> None:
    precedence = ("desk", "pa", "replay")
    ranked = sorted(
        ["zeta", "replay", "alpha", "pa", "desk"], key=lambda n: source_rank(n, precedence)
    )
    assert ranked == ["desk", "pa", "replay", "alpha", "zeta"]


def test_the_seed_case_differs_on_majority_votes_and_time() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    pa, agency = source_view(_from(result, "pa:live")), source_view(misreported(result))
    found = {d.field: (d.first, d.second) for d in differences(pa, agency, 60_000)}
    assert found == {
        "majority": (630, 600),
        "declared_at": ("2024-07-05T06:00:00Z", "2024-07-05T05:48:00Z"),
        f"votes:{TRUSS}": (11217, 11247),
    }
    # Within the tolerance, times agree; a rush has no votes to differ on.
    assert {d.field for d in differences(pa, agency, 13 * 60_000)} == {"majority", f"votes:{TRUSS}"}
    rush_view = source_view(
        _from(result, "agency").model_copy(
            update={
                "kind": DeclarationKind.RUSH,
                "valid_votes": None,
                "candidates": [c.model_copy(update={"votes": None}) for c in result.candidates],
            }
        )
    )
    assert differences(pa, rush_view, 60_000) == ()


def test_a_conflict_opens_once_and_ends_agreed_or_superseded() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    pa = source_view(_from(result, "pa:live"))
    wrong = source_view(misreported(result))
    corrected = source_view(_from(result, "agency:wire", 2))
    still_wrong = source_view(
        misreported(result).model_copy(update={"revision": 3, "source": "agency:wire"})
    )
    assert conflict_turns({}, {"pa": pa}, RULES) == []
    [opened] = conflict_turns({"pa": pa}, {"pa": pa, "agency": wrong}, RULES)
    assert opened.resolution is None
    assert (opened.disagreement.first.source, opened.disagreement.second.source) == ("pa", "agency")
    assert opened.disagreement.conflict_id == "pa:1:agency:1"
    # The same views again (a redelivery, a restart): nothing new to tell.
    assert conflict_turns({"pa": pa, "agency": wrong}, {"pa": pa, "agency": wrong}, RULES) == []
    [ended] = conflict_turns({"pa": pa, "agency": wrong}, {"pa": pa, "agency": corrected}, RULES)
    assert (ended.resolution, ended.disagreement.conflict_id) == (AGREED, "pa:1:agency:1")
    turns = conflict_turns({"pa": pa, "agency": wrong}, {"pa": pa, "agency": still_wrong}, RULES)
    assert [(t.resolution, t.disagreement.conflict_id) for t in turns] == [
        (SUPERSEDED, "pa:1:agency:1"),
        (None, "pa:1:agency:3"),
    ]


@pytest.fixture
async def store() -> AsyncIterator[TallyStore]:
    redis: Redis = fakeredis.FakeAsyncRedis()
    yield TallyStore(redis, ELECTION, "t:", night().register)
    await redis.aclose()


async def _apply(store: TallyStore, declarations: list[Declaration], first: int = 0) -> list[str]:
    steps = [PendingApply(d, "declarations", 0, first + at) for at, d in enumerate(declarations)]
    return [outcome.outcome for outcome in await store.apply_steps(steps)]


async def test_the_seat_counts_the_first_source_in_precedence_and_keeps_the_others(
    store: TallyStore,
) -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    agency, pa = misreported(result), _from(result, "pa:live")
    # The agency first: it counts while it is the only source.
    assert await _apply(store, [agency]) == ["applied"]
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert seat is not None and (seat.source, seat.majority) == ("agency", 600)
    # PA ranks above an unlisted agency: its figures take over, the totals move to them.
    assert await _apply(store, [pa], 1) == ["applied"]
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert seat is not None and (seat.source, seat.majority) == ("pa", 630)
    totals = await store.totals()
    assert totals["party:Con:votes"] == 11217 and totals["total:declared"] == 1
    # The agency's correction is kept and logged, but counts nothing: PA is on air.
    corrected = _from(result, "agency:wire", 2)
    assert await _apply(store, [corrected], 2) == ["outranked"]
    assert await store.totals() == {**totals, "meta:sequence": 3}
    [change] = await store.changes(after=2)
    assert change.result is None and change.counted == "pa"
    assert change.view is not None and change.view.source == "agency"
    assert set(change.views_before) == {"agency", "pa"}
    assert change.views_before["agency"].majority == 600 and change.view.majority == 630
    # Revisions are each source's own: the agency's 1 again is superseded, PA's 1 a duplicate.
    assert await _apply(store, [agency, pa], 3) == ["superseded", "duplicate"]
    # The desk outranks PA; a recount PA calls after that is kept, and the desk's figures stand.
    desk = _from(result, "desk:editor", 1)
    recount = recount_notice(_from(result, "pa:live"), 2)
    assert await _apply(store, [desk, recount], 5) == ["applied", "outranked"]
    seat = await store.seat(SOUTH_WEST_NORFOLK)
    assert seat is not None and (seat.source, seat.recount) == ("desk", False)
    counters = await store.counters()
    assert counters["tally:outranked"] == 2 and counters["tally:applied"] == 3


async def test_a_night_through_the_publisher_tells_one_conflict_and_its_end(
    store: TallyStore,
) -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    sent = [
        _from(result, "pa:live"),
        misreported(result),
        revised(_from(result, "agency:wire"), 2, DeclarationKind.CORRECTION),
    ]
    await _apply(store, sent)
    register = night().register
    changes = await store.changes(after=0)
    telling = Telling(NightStory(register))
    policy = Settings().alert_policy()
    watchlist = load_watchlist(DATA_DIR / "watchlist.csv")
    announced = tell(telling, changes, register, watchlist, policy, RULES)
    outputs = [output for _, found in announced for output in found]
    newsroom = [output for output in outputs if output.topic == "newsroom"]
    assert not any(b"agency" in output.value for output in outputs if output.topic == "alerts")
    opened, ended = (SourceConflict.model_validate_json(output.value) for output in newsroom)
    assert (opened.status, opened.on_air, opened.constituency_name) == (
        "open",
        "pa",
        "South West Norfolk",
    )
    assert opened.rehearsal == policy.rehearsal
    assert [s.source for s in opened.sources] == ["pa", "agency"]
    assert [s.majority for s in opened.sources] == [630, 600]
    truss = {d.field: d for d in opened.differences}[f"votes:{TRUSS}"]
    assert truss.label == "votes of Liz Truss (Con)" and truss.values == {
        "pa": 11217,
        "agency": 11247,
    }
    assert (ended.status, ended.resolution, ended.conflict_id) == (
        "resolved",
        "agreed",
        opened.conflict_id,
    )
    # One result on air, PA's; the agency's revisions publish no result of their own.
    results = [orjson.loads(o.value) for o in outputs if o.topic == "results"]
    assert [(r["source"], r["majority"]) for r in results] == [("pa", 630)]
    # The snapshots count every change, so the state's sequence is the change log's.
    assert telling.told == len(changes) == 3
    # A rebuild finds these outputs on Kafka by the ids the publisher dedupes by.
    found = outputs_on_kafka("newsroom", records(*(o.value for o in newsroom)), ELECTION).ids
    assert found == [o.output_id for o in newsroom]
    assert len(set(found)) == 2


def test_results_of_two_sources_have_ids_of_their_own() -> None:
    register = night().register
    ref = register.constituencies[SOUTH_WEST_NORFOLK]
    result = declaration_of(SOUTH_WEST_NORFOLK)
    ids = set()
    for source in ("replay:ge2024", "pa:live"):
        seat = seat_result(_from(result, source), ref, 1)
        output: Output = result_output(Change(1, seat, None, {}))
        ids.add(output.output_id)
        assert outputs_on_kafka("results", records(output.value), ELECTION).ids == [
            output.output_id
        ]
    assert ids == {f"result:{SOUTH_WEST_NORFOLK}:replay:1", f"result:{SOUTH_WEST_NORFOLK}:pa:1"}
