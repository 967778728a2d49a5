"""What one worker's agents, timers and views share: settings, Redis client, reference data."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import faust
from faust.types import AppT
from redis.asyncio import Redis

from streams.connections import redis_from_settings
from streams.pipeline.topics import Topics
from streams.rules.projection import Projecting
from streams.rules.reference import ReferenceDataError, Register, cached_register
from streams.settings import Settings
from streams.store.holds import DeskHolds
from streams.store.keys import election_namespace
from streams.store.outbox import Outbox
from streams.store.tally_store import TallyStore


class WorkerContext:
    """Built once per app from the settings; each handle is made on first use, not at import."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def redis(self) -> Redis:
        return redis_from_settings(self.settings, decode_responses=False)

    @cached_property
    def register(self) -> Register:
        loaded = cached_register(self.settings.data_dir)
        if loaded.election_id != self.settings.election_id:
            # A worker told to process one election must not tally another's reference data.
            raise ReferenceDataError(
                f"ELECTION_ELECTION_ID is {self.settings.election_id} but {self.settings.data_dir} "
                f"holds {loaded.election_id}"
            )
        return loaded

    @cached_property
    def namespace(self) -> str:
        """Every Redis key of this election starts with this, so elections live side by side."""
        return election_namespace(self.settings.redis_key_prefix, self.settings.election_id)

    @cached_property
    def store(self) -> TallyStore:
        return TallyStore(self.redis, self.settings.election_id, self.settings.redis_key_prefix)

    @cached_property
    def projecting(self) -> Projecting | None:
        """How the live projection is made (the baseline arrays, built once), or None."""
        return self.settings.projecting(self.register)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.redis, self.namespace)

    @cached_property
    def holds(self) -> DeskHolds:
        return DeskHolds(self.redis, self.namespace)


class ElectionApp(faust.App):
    """A Faust app that carries its worker's context to the agents and views registered on it."""

    # Set by create_app; not `topics`, which is Faust's own conductor.
    night_topics: Topics

    def __init__(self, context: WorkerContext, **options: Any) -> None:
        self.context = context
        super().__init__(context.settings.app_id, **options)


def context_of(app: AppT) -> WorkerContext:
    """The context of the app a view or agent runs in (always an ElectionApp here)."""
    if not isinstance(app, ElectionApp):
        raise TypeError(f"{app!r} was not made by streams.pipeline.app.create_app")
    return app.context
