"""Our tallies read by code that runs no event loop (the feed ingests), through the TallyStore."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from schemas.results import StateOfParties
from streams.rules.reference import Register
from streams.store.tally_store import TallyStore


class BlockingTallyReader:
    """One read at a time, each on a connection of its own made by `connect`: the ingest
    reads while it waits for the workers, a few times a second at most."""

    def __init__(self, connect: Callable[[], Redis], key_prefix: str, register: Register) -> None:
        self._connect = connect
        self._key_prefix = key_prefix
        self._register = register

    def applied_and_state(self, topic: str) -> tuple[dict[int, int], StateOfParties]:
        """The last offset applied of each partition of `topic`, then the state of the
        parties, read in that order: the state holds at least what those offsets brought."""
        return asyncio.run(self._read(topic))

    async def _read(self, topic: str) -> tuple[dict[int, int], StateOfParties]:
        redis = self._connect()
        try:
            store = TallyStore(redis, self._register.election_id, self._key_prefix, self._register)
            read, _ = await store.partitions_read(topic)
            state = await store.state()
        finally:
            await redis.aclose()
        return {partition: progress.applied for partition, progress in read.items()}, state
