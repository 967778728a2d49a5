"""/api/state and /api/seats: built once per change, served gzipped, 304 when nothing changed."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any, cast

import pytest
from aiohttp.test_utils import make_mocked_request
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from schemas.results import SeatResult
from streams.pipeline.app import create_app
from streams.settings import Settings
from streams.web.body_cache import BodyCache

# An app of this module's own: the cache is per worker, and other modules share theirs.
app = create_app(Settings())


class Versioned:
    """A build and a version to hand the cache, counting builds."""

    def __init__(self) -> None:
        self.version = 1
        self.builds = 0

    async def read_version(self) -> int:
        return self.version

    async def build(self) -> bytes:
        self.builds += 1
        await asyncio.sleep(0.01)  # long enough for other requests to arrive meanwhile
        return b'{"version": %d}' % self.version


async def test_a_body_is_built_once_per_version() -> None:
    cache, source = BodyCache(), Versioned()
    first = await cache.get(source.build, source.read_version)
    again = await cache.get(source.build, source.read_version)
    assert again is first and source.builds == 1
    source.version = 2
    changed = await cache.get(source.build, source.read_version)
    assert changed.content == b'{"version": 2}' and changed.etag != first.etag
    assert source.builds == 2
    # Back to a lower version (a reset): a change too.
    source.version = 1
    assert (await cache.get(source.build, source.read_version)).version == 1
    assert source.builds == 3


async def test_a_burst_after_a_change_builds_once() -> None:
    cache, source = BodyCache(), Versioned()
    burst = (cache.get(source.build, source.read_version) for _ in range(50))
    bodies = await asyncio.gather(*burst)
    assert source.builds == 1
    assert {body.etag for body in bodies} == {bodies[0].etag}


async def test_the_compressed_body_is_the_same_json() -> None:
    cache, source = BodyCache(), Versioned()
    body = await cache.get(source.build, source.read_version)
    assert gzip.decompress(body.gzipped) == body.content
    assert body.gzip_etag != body.etag


# ---- through the views ----


class FakeStore:
    """The store's reads the two views make, with the change sequence under the test's hand."""

    def __init__(self) -> None:
        self.sequence_now = 5
        self.seat_reads = 0
        self.state_reads = 0

    async def sequence(self) -> int:
        return self.sequence_now

    async def seats(self) -> dict[str, SeatResult]:
        self.seat_reads += 1
        return {}

    async def state(self, register: Any = None) -> Any:
        self.state_reads += 1
        return FakeState(self.sequence_now)


class FakeState:
    def __init__(self, sequence: int) -> None:
        self.sequence = sequence

    def model_copy(self, update: dict[str, Any]) -> FakeState:
        return self  # the view marks the worker's mode on it

    def model_dump_json(self) -> str:
        return f'{{"sequence": {self.sequence}}}'


async def get(path: str, headers: dict[str, str] | None = None) -> Any:
    web = cast(AiohttpWeb, app.web)
    web.init_server()
    request = make_mocked_request("GET", path, headers=headers or {}, app=web.web_app)
    match = await web.web_app.router.resolve(request)
    request._match_info = match
    return await match.handler(request)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    monkeypatch.setattr(app.context, "store", fake)
    monkeypatch.setattr(app.context, "register", object())
    # A projection reads the seats too; this counts the reads of the state alone.
    monkeypatch.setattr(app.context, "projecting", None, raising=False)
    return fake


@pytest.mark.parametrize("path", ["/api/state", "/api/seats"])
async def test_polling_builds_once_per_change_and_answers_304(store: FakeStore, path: str) -> None:
    reads = (lambda: store.state_reads) if path == "/api/state" else (lambda: store.seat_reads)
    store.sequence_now += 100  # a version no other test of this module left cached
    first = await get(path)
    assert first.status == 200 and first.headers["Content-Type"].startswith("application/json")
    etag = first.headers["ETag"]
    for _ in range(5):
        again = await get(path, {"If-None-Match": etag})
        assert again.status == 304 and again.headers["ETag"] == etag
    assert reads() == 1  # six answers, one build
    store.sequence_now += 1
    changed = await get(path, {"If-None-Match": etag})
    assert reads() == 2  # built again at the new sequence
    if path == "/api/state":  # the fake's state tells its sequence; its seats stay empty
        assert changed.status == 200 and changed.headers["ETag"] != etag
    else:
        assert changed.status == 304  # rebuilt, and the same: still not modified


async def test_a_client_that_accepts_gzip_gets_it_with_its_own_etag(store: FakeStore) -> None:
    store.sequence_now += 200
    plain = await get("/api/state")
    zipped = await get("/api/state", {"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    # Origin joins it as the response is sent (tests/unit/test_cors.py): no server here.
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    again = await get(
        "/api/state", {"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]}
    )
    assert again.status == 304
