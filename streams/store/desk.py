"""The desk in Redis: its people's tokens (digests only), and the revisions its corrections took."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from redis.asyncio import Redis

from schemas.audit import Role
from streams.rules.desk import Enrolment, Person
from streams.store.keys import DESK_REVISIONS, people_key
from streams.store.replies import text


def _encode(enrolment: Enrolment) -> bytes:
    return orjson.dumps(
        {
            "role": enrolment.person.role.value,
            "sha256": enrolment.digest.hex(),
            "created_at": enrolment.created_at.isoformat(),
            "created_by": enrolment.created_by,
        }
    )


def _decode(name: str, raw: bytes | str) -> Enrolment:
    kept = orjson.loads(raw)
    return Enrolment(
        person=Person(name, Role(kept["role"])),
        digest=bytes.fromhex(kept["sha256"]),
        created_at=dt.datetime.fromisoformat(kept["created_at"]),
        created_by=kept["created_by"],
    )


class DeskPeople:
    """Who has a token, under `{key_prefix}desk:people` (streams.store.keys.people_key)."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self.redis = redis
        self.key = people_key(key_prefix)

    async def enrolled(self) -> list[Enrolment]:
        """Everyone with a token, by name: one read, small (a newsroom's staff)."""
        raw: Any = await self.redis.hgetall(self.key)
        return sorted(
            (_decode(text(name), value) for name, value in raw.items()),
            key=lambda enrolment: enrolment.person.name,
        )

    async def find(self, name: str) -> Enrolment | None:
        raw = await self.redis.hget(self.key, name)
        return _decode(name, raw) if raw is not None else None

    async def enrol(self, enrolment: Enrolment) -> bool:
        """Keep a new token; False (nothing kept) when the name already has one."""
        return bool(await self.redis.hsetnx(self.key, enrolment.person.name, _encode(enrolment)))

    async def revoke(self, name: str) -> bool:
        """Forget a person's token: from now on it is an unknown token. False: there was none."""
        return bool(await self.redis.hdel(self.key, name))


class DeskRevisions:
    """The desk's revisions of each seat, claimed before a correction goes out."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.ns = namespace

    def _key(self, ons_id: str) -> str:
        return f"{self.ns}{DESK_REVISIONS}{ons_id}"

    async def highest_claimed(self, ons_id: str) -> int:
        """The highest revision of the seat a correction took (0: none)."""
        taken: Any = await self.redis.hkeys(self._key(ons_id))
        return max((int(text(revision)) for revision in taken), default=0)

    async def claim(self, ons_id: str, revision: int, name: str) -> bool:
        """Take `revision` of the seat for `name`'s correction; False when another took it."""
        return bool(await self.redis.hsetnx(self._key(ons_id), str(revision), name))
