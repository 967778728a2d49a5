"""A polled JSON body built once per change of the tallies, with its ETag, for every poller."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Compressed once per change, not per request: /api/seats is over 1 MB of JSON, and poller
# after poller would otherwise be sent all of it. Level 5: most of the gain, little of the time.
GZIP_LEVEL = 5


@dataclass(frozen=True, slots=True)
class Body:
    content: bytes
    etag: str
    version: int  # the change sequence read before it was built: it is at least this new
    gzipped: bytes

    @property
    def gzip_etag(self) -> str:
        """The compressed form is another representation, so another strong ETag."""
        return self.etag[:-1] + '-gzip"'

    @classmethod
    def of(cls, content: bytes, version: int) -> Body:
        return cls(content, etag_of(content), version, gzip.compress(content, GZIP_LEVEL))


def etag_of(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


class BodyCache:
    """The last body built, reused while `version_of()` (one cheap read) still answers the same.

    Both are given on each call, so the cache holds nothing of the worker but the body.
    `version_of` must move whenever what `build` reads does: here the change log's sequence,
    which every applied change (results, corrections, the exit poll) advances. The version is
    read before building, so a change landing mid-build makes the next request build again
    rather than keep a body older than its version.
    """

    def __init__(self) -> None:
        self._body: Body | None = None
        # One build at a time: a burst of requests after a change waits for one build, not
        # one each.
        self._lock = asyncio.Lock()
        self.builds = 0

    async def get(
        self, build: Callable[[], Awaitable[bytes]], version_of: Callable[[], Awaitable[int]]
    ) -> Body:
        version = await version_of()
        body = self._body
        if body is not None and body.version == version:
            return body
        async with self._lock:
            # Read again: another request may have built it while this one waited. Any other
            # version is a change, a lower one too (a reset starts the sequence again).
            version = await version_of()
            body = self._body
            if body is not None and body.version == version:
                return body
            content = await build()
            self.builds += 1
            self._body = Body.of(content, version)
            return self._body
