"""Two sources on one seat through a real worker: PA's figures on air, the disagreement told."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from schemas.declaration import Declaration, DeclarationKind
from schemas.source_conflict import SourceConflict
from scripts.chaos import Outgoing
from tests.integration.pipeline import Pipeline
from tests.unit.tally_fixtures import SOUTH_WEST_NORFOLK, declaration_of, misreported, revised


def _outgoing(declaration: Declaration) -> Outgoing:
    return Outgoing(
        declaration.constituency_id,
        declaration.model_dump_json().encode(),
        f"{declaration.source} {declaration.revision}",
        declaration.declared_at,
    )


def _wait(
    what: str, found: Callable[[], list[bytes]], count: int, timeout: float = 60
) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        got = found()
        if len(got) >= count:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(got)} of {count} {what} after {timeout}s")
        time.sleep(0.2)


def test_a_second_source_disagreeing_with_pa_is_one_conflict_then_its_resolution(
    pipeline: Pipeline,
) -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    pa = result.model_copy(update={"source": "pa:rehearsal"})
    wrong = misreported(result, "agency:wire")
    # The seat misnamed by a third outlet is nobody's figures: refused at the door.
    misnamed = misreported(result, "localpaper").model_copy(
        update={"constituency_name": "North West Norfolk"}
    )
    corrected = revised(
        result.model_copy(update={"source": "agency:wire"}), 2, DeclarationKind.CORRECTION
    )

    def newsroom() -> list[bytes]:
        return [value for _, value, _ in pipeline.read("newsroom")]

    with pipeline.worker() as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send([_outgoing(pa), _outgoing(wrong), _outgoing(misnamed)])
        [opened_raw] = _wait("conflicts", newsroom, 1)
        seat = pipeline.seats()[SOUTH_WEST_NORFOLK]
        assert (seat.source, seat.majority) == ("pa", 630)  # the precedence's choice on air
        pipeline.send([_outgoing(corrected)])
        opened_raw, ended_raw = _wait("conflict messages", newsroom, 2)
        time.sleep(1)  # anything told twice would be on the topic by now
        assert len(newsroom()) == 2
        counters = pipeline.counters()

    opened = SourceConflict.model_validate_json(opened_raw)
    assert opened.rehearsal  # the worker's mode, as every output says
    assert (opened.status, opened.on_air, opened.constituency_id) == (
        "open",
        "pa",
        SOUTH_WEST_NORFOLK,
    )
    assert [(s.source, s.majority) for s in opened.sources] == [("pa", 630), ("agency", 600)]
    fields = {d.field: d.values for d in opened.differences}
    assert fields["majority"] == {"pa": 630, "agency": 600}
    assert fields["declared_at"] == {"pa": "2024-07-05T06:00:00Z", "agency": "2024-07-05T05:48:00Z"}
    ended = SourceConflict.model_validate_json(ended_raw)
    assert (ended.status, ended.resolution, ended.conflict_id) == (
        "resolved",
        "agreed",
        opened.conflict_id,
    )

    # One result on air, PA's; the agency's revisions counted as kept, not applied.
    results = [orjson.loads(value) for _, value, _ in pipeline.read("results")]
    assert [(r["source"], r["majority"]) for r in results] == [("pa", 630)]
    assert counters["tally:applied"] == 1 and counters["tally:outranked"] == 2
    [letter] = [orjson.loads(value) for _, value, _ in pipeline.read("dead_letter")]
    assert letter["reason"] == "unknown_constituency" and "North West Norfolk" in letter["detail"]
    # Nothing of it reaches the apps' topic.
    assert not any(b"agency" in value for _, value, _ in pipeline.read("alerts"))
