"""A lease in Redis: one holder at a time, known by its token, lost if not renewed in its TTL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from streams.store.lua_scripts import lua_script

_ACQUIRE = lua_script("lease_acquire")
_RENEW = lua_script("lease_renew")
_RELEASE = lua_script("lease_release")


class Lease:
    """The publisher's, the webhook dispatcher's or a rebuild's right to act alone.

    The token tells this holder from the others: a holder that stalled past its TTL finds
    the lease taken and can neither renew nor release what is now another's.
    """

    def __init__(self, redis: Redis, key: str, ttl_ms: int, token: str | None = None) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = token or uuid.uuid4().hex
        self._acquire = redis.register_script(_ACQUIRE.source)
        self._renew = redis.register_script(_RENEW.source)
        self._release = redis.register_script(_RELEASE.source)

    async def acquire(self) -> bool:
        """Take the lease if it is free, or keep it if it is ours: True while it is ours."""
        return bool(await self._acquire(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def renew(self) -> bool:
        """Give the lease a fresh TTL if it is still ours."""
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def release(self) -> None:
        """Give the lease up if it is still ours; another holder's is left alone."""
        await self._release(keys=[self.key], args=[self.token])

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the lease every third of its TTL while the block runs, however long it takes."""
        keeper = asyncio.create_task(self._keep())
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            await self.renew()
