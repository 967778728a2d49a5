"""What the declaration agent dead-letters for a declaration the tally would not apply."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import orjson

from schemas.declaration import DeclarationKind
from schemas.rejection import Rejection, RejectionReason
from streams.pipeline.declaration_agent import tally_rejection
from streams.store.tally_store import PendingApply, StepOutcome
from tests.unit.tally_fixtures import SOUTH_WEST_NORFOLK, declaration_of, revised

ELECTION = "parl.2024-07-04"


def _event(value: bytes, offset: int) -> Any:
    """The parts of a Faust event the agent reads."""
    return SimpleNamespace(
        message=SimpleNamespace(value=value, topic="declarations", partition=2, offset=offset)
    )


def test_a_revision_jump_is_dead_lettered_with_what_the_desk_needs() -> None:
    typo = revised(declaration_of(SOUTH_WEST_NORFOLK), 1_000_000, DeclarationKind.CORRECTION)
    value = typo.model_dump_json().encode()
    step = PendingApply(typo, "declarations", 2, 41)
    outcome = StepOutcome("revision_jump", None, current_revision=3)
    rejection = tally_rejection(step, outcome, _event(value, 41), ELECTION, 100)
    assert rejection is not None
    assert rejection.reason is RejectionReason.REVISION_JUMP
    assert rejection.detail == (
        "South West Norfolk revision 1000000 is more than 100 (ELECTION_MAX_REVISION_JUMP) "
        "past its "
        "current revision 3; not applied. Send the true figures as revision 4 to 103"
    )
    assert base64.b64decode(rejection.original_b64) == value
    assert rejection.original_key == SOUTH_WEST_NORFOLK
    where = (rejection.source_topic, rejection.source_partition, rejection.source_offset)
    assert where == ("declarations", 2, 41)
    assert rejection.election_id == ELECTION
    # As published: the contract's reason, readable back.
    published = orjson.loads(rejection.model_dump_json())
    assert published["reason"] == "revision_jump"
    assert Rejection.model_validate(published) == rejection


def test_a_first_declaration_too_far_ahead_names_revision_0() -> None:
    ahead = revised(declaration_of(SOUTH_WEST_NORFOLK), 250, DeclarationKind.RESULT)
    step = PendingApply(ahead, "declarations", 0, 7)
    outcome = StepOutcome("revision_jump", None, current_revision=0)
    rejection = tally_rejection(step, outcome, _event(b"{}", 7), ELECTION, 50)
    assert rejection is not None and rejection.reason is RejectionReason.REVISION_JUMP
    assert "revision 250 is more than 50 (ELECTION_MAX_REVISION_JUMP) past 0 (no revision" in (
        rejection.detail
    )
    assert rejection.detail.endswith("as revision 1 to 50")


def test_only_a_conflict_or_a_jump_is_dead_lettered_by_the_tally() -> None:
    result = declaration_of(SOUTH_WEST_NORFOLK)
    step = PendingApply(result, "declarations", 0, 3)
    event = _event(b"{}", 3)
    conflict = tally_rejection(step, StepOutcome("conflict", None), event, ELECTION, 100)
    assert conflict is not None and conflict.reason is RejectionReason.REVISION_CONFLICT
    for name in ("applied", "duplicate", "superseded", "redelivered"):
        assert tally_rejection(step, StepOutcome(name, None), event, ELECTION, 100) is None
