"""The newsroom desk through a real worker and broker: an editor's hand correction of South West
Norfolk goes on air over the replay's figures, and every change is on the audit topic."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from schemas.audit import AuditAction, AuditRecord, AuditStage, Role
from schemas.declaration import Declaration
from schemas.source_conflict import SourceConflict
from tests.integration.helpers import PROJECT_ROOT
from tests.integration.pipeline import Pipeline
from tests.integration.test_sources import _outgoing, _wait
from tests.unit.tally_fixtures import SOUTH_WEST_NORFOLK, declaration_of, misreported

CORRECTIONS = "/api/desk/declarations"
SOURCES = f"/api/desk/seats/{SOUTH_WEST_NORFOLK}/sources"


def give_token(env: dict[str, str], name: str, role: str) -> str:
    """`election-desk-tokens add` as an operator runs it, against the test's Redis and topics."""
    done = subprocess.run(
        [sys.executable, "-m", "scripts.desk_tokens", "add", name, "--role", role],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [token] = re.findall(rf"^{name} \({role}\): (desk_\S+)$", done.stdout, re.MULTILINE)
    return token


def _until(what: str, holds: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s")
        time.sleep(0.2)


def test_an_editors_correction_goes_on_air_over_the_replay_and_is_on_the_record(
    pipeline: Pipeline,
) -> None:
    env = pipeline.env()
    editor = give_token(env, "ed", "editor")
    viewer = give_token(env, "vera", "viewer")
    result = declaration_of(SOUTH_WEST_NORFOLK)
    # The replay's outlet had Truss 30 votes closer; the desk types in the true figures.
    replay = misreported(result, "replay:ge2024")
    entry: dict[str, Any] = orjson.loads(result.model_dump_json())
    del entry["source"], entry["revision"]

    def on_air() -> tuple[str | None, int | None]:
        seat = pipeline.seats().get(SOUTH_WEST_NORFOLK)
        return (seat.source, seat.majority) if seat is not None else (None, None)

    def newsroom() -> list[bytes]:
        return [value for _, value, _ in pipeline.read("newsroom")]

    with pipeline.worker() as worker, httpx.Client(base_url=worker.base_url, timeout=30) as web:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send([_outgoing(replay)])
        _until("replay on air", lambda: on_air() == ("replay", 600))

        nobody = web.post(CORRECTIONS, json=entry)
        refused = web.post(CORRECTIONS, json=entry, headers={"Authorization": f"Bearer {viewer}"})
        sent = web.post(CORRECTIONS, json=entry, headers={"Authorization": f"Bearer {editor}"})
        assert (nobody.status_code, refused.status_code, sent.status_code) == (401, 403, 202)
        assert nobody.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json() == {"error": "vera is a viewer: this needs editor"}
        answer = sent.json()
        assert (answer["source"], answer["revision"], answer["rehearsal"]) == ("desk:ed", 1, True)

        _until("the desk's figures on air", lambda: on_air() == ("desk", 630))
        report = web.get(SOURCES, headers={"Authorization": f"Bearer {viewer}"}).json()
        [opened_raw] = _wait("conflicts", newsroom, 1)
        worker_log = worker.log()

    assert (report["on_air"], [s["source"] for s in report["sources"]]) == (
        "desk",
        ["desk", "replay"],
    )
    opened = SourceConflict.model_validate_json(opened_raw)
    assert (opened.status, opened.on_air) == ("open", "desk")
    assert {d.field: d.values for d in opened.differences}["majority"] == {
        "desk": 630,
        "replay": 600,
    }

    # On the declarations topic as the desk's, keyed by the seat, naming its audit action.
    [(key, _, headers)] = [
        message
        for message in pipeline.read("declarations")
        if Declaration.model_validate_json(message[1]).source.startswith("desk:")
    ]
    assert key == SOUTH_WEST_NORFOLK.encode()
    assert headers["audit-action"] == answer["action_id"].encode()

    records = [AuditRecord.model_validate_json(value) for _, value, _ in pipeline.read("audit")]
    tokens = [r for r in records if r.action is AuditAction.TOKEN_ADD]
    assert [(r.target, r.stage, r.after["role"] if r.after else None) for r in tokens] == [
        ("ed", AuditStage.INTENDED, "editor"),
        ("ed", AuditStage.DONE, "editor"),
        ("vera", AuditStage.INTENDED, "viewer"),
        ("vera", AuditStage.DONE, "viewer"),
    ]
    assert all(r.who.startswith("console:") and r.role is Role.ADMIN for r in tokens)
    # The refused attempts are answers, not actions: on the record is the editor's alone.
    intended, done = (r for r in records if r.action is AuditAction.CORRECTION)
    assert intended.action_id == done.action_id == answer["action_id"]
    assert [(r.stage, r.who, r.role, r.target) for r in (intended, done)] == [
        (AuditStage.INTENDED, "ed", Role.EDITOR, SOUTH_WEST_NORFOLK),
        (AuditStage.DONE, "ed", Role.EDITOR, SOUTH_WEST_NORFOLK),
    ]
    assert intended.at <= done.at and all(r.rehearsal for r in records)
    assert intended.before is not None and intended.before["on_air"] == "replay"
    assert [s["majority"] for s in intended.before["sources"]] == [600]
    assert intended.after is not None and intended.after["source"] == "desk:ed"
    assert done.after is not None and done.after["kafka"] == {
        "topic": pipeline.topics["declarations"],
        "partition": answer["partition"],
        "offset": answer["offset"],
    }
    # No token anywhere it could leak: the audit topic, the worker's log.
    every_record = b"".join(value for _, value, _ in pipeline.read("audit"))
    for token in (editor, viewer):
        assert token.encode() not in every_record and token not in worker_log


def test_an_editor_chooses_between_disagreeing_sources_and_the_choice_goes_on_air(
    pipeline: Pipeline,
) -> None:
    """PA and an agency disagree on South West Norfolk; the desk lists the conflict with both
    values, and the editor's choice of the agency's figures goes on air as a correction."""
    env = pipeline.env()
    editor = give_token(env, "ed", "editor")
    official = declaration_of(SOUTH_WEST_NORFOLK).model_copy(update={"source": "pa:rehearsal"})
    agency = misreported(declaration_of(SOUTH_WEST_NORFOLK), "agency:wire")
    bearer = {"Authorization": f"Bearer {editor}"}

    def on_air() -> tuple[str | None, int | None]:
        seat = pipeline.seats().get(SOUTH_WEST_NORFOLK)
        return (seat.source, seat.majority) if seat is not None else (None, None)

    with pipeline.worker() as worker, httpx.Client(base_url=worker.base_url, timeout=30) as web:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send([_outgoing(official), _outgoing(agency)])
        _until("PA on air", lambda: on_air() == ("pa", 630))
        conflicts: list[Any] = []

        def listed() -> bool:
            conflicts[:] = web.get("/api/desk/queue", headers=bearer).json()["conflicts"]
            return bool(conflicts)

        _until("the conflict on the desk", listed)
        unknown = web.post(
            f"/api/desk/seats/{SOUTH_WEST_NORFOLK}/choose", json={"source": "bbc"}, headers=bearer
        )
        chosen = web.post(
            f"/api/desk/seats/{SOUTH_WEST_NORFOLK}/choose",
            json={"source": "agency"},
            headers=bearer,
        )
        assert unknown.status_code == 404 and "agency, pa" in unknown.json()["error"]
        assert chosen.status_code == 202, chosen.text
        _until("the agency's figures on air as the desk's", lambda: on_air() == ("desk", 600))

    [conflict] = conflicts
    assert (conflict["constituency_id"], conflict["counted"]) == (SOUTH_WEST_NORFOLK, "pa")
    assert {s["source"]: s["majority"] for s in conflict["sources"]} == {"pa": 630, "agency": 600}
    assert any(d["values"] == {"pa": 630, "agency": 600} for d in conflict["differences"])
    [sent] = [
        Declaration.model_validate_json(value)
        for _, value, _ in pipeline.read("declarations")
        if Declaration.model_validate_json(value).source == "desk:ed"
    ]
    assert sent.kind == "correction" and sent.declared_at == agency.declared_at
    assert {c.person_id: c.votes for c in sent.candidates} == {
        c.person_id: c.votes for c in agency.candidates
    }
