"""Shared handles of a worker process: the Redis client and the election's reference data."""

from __future__ import annotations

from functools import cache

from redis.asyncio import Redis

from streams import redis_keys
from streams.connections import redis_from_settings
from streams.reference import ReferenceDataError, Register, cached_register
from streams.settings import get_settings


@cache
def redis_client() -> Redis:
    settings = get_settings()
    return redis_from_settings(settings, decode_responses=False)


@cache
def register() -> Register:
    settings = get_settings()
    loaded = cached_register(settings.data_dir)
    if loaded.election_id != settings.election_id:
        # A worker told to process one election must not tally another's reference data.
        raise ReferenceDataError(
            f"ELECTION_ID is {settings.election_id} but {settings.data_dir} holds "
            f"{loaded.election_id}"
        )
    return loaded


def election_namespace() -> str:
    """Every Redis key of this election starts with this, so elections live side by side."""
    settings = get_settings()
    return redis_keys.election_namespace(settings.redis_key_prefix, settings.election_id)
