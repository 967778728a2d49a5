"""A lease in Redis: one holder at a time, known by its token, lost if not renewed in its TTL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from streams.store.lua_scripts import lua_script

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
        self._renew = redis.register_script(_RENEW.source)

    async def acquire(self) -> bool:
        """Take the lease if it is free, or keep it if it is ours: True while it is ours."""
        if await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Give the lease a fresh TTL if it is still ours."""
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def release(self) -> None:
        """Give the lease up if it is still ours; another holder's is left alone."""
        await self.redis.eval(_RELEASE.source, 1, self.key, self.token)

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
