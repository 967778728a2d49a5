"""election-rebuild and election-reset run as an operator runs them, against a real broker and
Redis: each action's intent and outcome on the audit topic as console:<user>, with the state
before and after, and no reset at all while Kafka is out of reach."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from schemas.audit import AuditAction, AuditRecord, AuditStage, Role
from scripts.replay import build_outgoing
from streams.rules.reference import load_register
from tests.integration.helpers import PROJECT_ROOT, free_port
from tests.integration.pipeline import DATA_DIR, ELECTION_ID, Pipeline

OPERATOR = "returning-officer"  # getpass reads LOGNAME first


def console(pipeline: Pipeline, module: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--election", ELECTION_ID],
        env={**os.environ, **pipeline.env(), "LOGNAME": OPERATOR, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_rebuild_and_a_reset_at_the_console_are_on_the_audit_topic(
    pipeline: Pipeline,
) -> None:
    register = load_register(DATA_DIR)
    pipeline.send(build_outgoing(DATA_DIR))

    rebuilt = console(pipeline, "scripts.rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    rebuilt_state = pipeline.state(register)
    assert rebuilt_state.seats_declared == 650

    # With the broker out of reach the intent cannot be written, so nothing is deleted.
    dead_broker = f"127.0.0.1:{free_port()}"
    refused = console(
        pipeline, "scripts.reset_election", ELECTION_KAFKA_BOOTSTRAP_SERVERS=dead_broker
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "election-reset: nothing changed: the audit trail could not be written "
        f"(Kafka at {dead_broker}: "
    ), refused.stderr
    assert refused.stdout == ""
    assert pipeline.state(register).seats_declared == 650

    reset = console(pipeline, "scripts.reset_election")
    assert reset.returncode == 0, reset.stderr
    [removed] = re.findall(r"^removed (\d+) keys of ", reset.stdout)
    assert int(removed) > 650 and pipeline.seats() == {}

    on_topic = pipeline.read("audit")
    records = [AuditRecord.model_validate_json(value) for _, value, _ in on_topic]
    assert [(r.action, r.stage) for r in records] == [
        (AuditAction.REBUILD, AuditStage.INTENDED),
        (AuditAction.REBUILD, AuditStage.DONE),
        (AuditAction.RESET, AuditStage.INTENDED),
        (AuditAction.RESET, AuditStage.DONE),
    ]
    assert [key for key, _, _ in on_topic] == [r.action_id.encode() for r in records]
    assert {(r.who, r.role, r.target, r.election_id, r.rehearsal) for r in records} == {
        (f"console:{OPERATOR}", Role.ADMIN, ELECTION_ID, ELECTION_ID, True)
    }
    rebuild_intended, rebuild_done, reset_intended, reset_done = records
    assert rebuild_intended.action_id == rebuild_done.action_id != reset_intended.action_id
    assert reset_intended.action_id == reset_done.action_id
    assert rebuild_intended.at <= rebuild_done.at <= reset_intended.at <= reset_done.at

    # The rebuild began from an empty state and read the whole night.
    assert rebuild_intended.before == rebuild_done.before == {"seats_tallied": 0, "sequence": 0}
    assert rebuild_done.after is not None
    assert isinstance(rebuild_done.after.pop("seconds"), float)
    assert rebuild_done.after == {
        "messages": 651,
        "seats_tallied": 650,
        "sequence": rebuilt_state.sequence,
    }
    # The reset found what the rebuild made and removed what it printed.
    assert reset_intended.before == {"seats_tallied": 650, "sequence": rebuilt_state.sequence}
    assert reset_done.after == {"removed_keys": int(removed)}
