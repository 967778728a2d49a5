"""The console commands' audit topic in memory: what election-reset, election-rebuild and
election-desk-tokens send there, or a broker that is away."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import scripts.console_audit
from schemas.audit import AuditRecord
from streams.pipeline.audit import AuditNotWritten, Send
from streams.settings import Settings

# Who runs the commands in these tests: getpass reads LOGNAME first.
OPERATOR = "duty-editor"


class ConsoleAudit:
    """Stands in for `scripts.console_audit.audit_sender`, the one way every console command
    reaches Kafka, so the trail and the commands above it run as they are."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records: list[AuditRecord] = []
        self.keys: list[bytes] = []
        self.kafka_down = False  # no producer at all: the broker cannot be reached
        self.refusing = False  # a producer, but no record acknowledged
        # Looked at as each record is taken, to show what the state was at that moment.
        self.witness: Callable[[], Awaitable[Any]] | None = None
        self.witnessed: list[Any] = []
        monkeypatch.setenv("LOGNAME", OPERATOR)
        monkeypatch.setattr(scripts.console_audit, "audit_sender", self.sender)

    @contextlib.contextmanager
    def sender(self, settings: Settings) -> Iterator[Send]:
        if self.kafka_down:
            raise AuditNotWritten(
                f"Kafka at {settings.kafka_bootstrap_servers}: NoBrokersAvailable()"
            )

        async def send(key: bytes, value: bytes) -> None:
            if self.refusing:
                raise ConnectionError("no broker")
            if self.witness is not None:
                self.witnessed.append(await self.witness())
            self.keys.append(key)
            self.records.append(AuditRecord.model_validate_json(value))

        yield send
