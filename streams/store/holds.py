"""Alerts held on the desk in Redis: what waits, what was decided, whose calls are held."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from schemas.alert import Alert
from schemas.desk import CallHeld, DeskAction, HeldAlert
from streams.rules.holds import REASON_TEXT, reason_of, release_at
from streams.store.keys import (
    ANNOUNCED,
    ANNOUNCED_IDS,
    DESK_ACTIONS,
    DESK_CALLS,
    DESK_DECIDED,
    DESK_HELD,
    DESK_KILLED,
    DESK_SENT,
    DESK_VERSION,
    OUTBOX,
    OUTBOX_SEQ,
    PUBLISHED,
)
from streams.store.lua_scripts import lua_script
from streams.store.outbox import OutboxProgress
from streams.store.replies import text

_DECIDE = lua_script("desk_decide")
RECENT_ACTIONS = 50


def _at_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def held_alert(raw: bytes | str) -> HeldAlert:
    """A held hash value, "<condition>\\n<held ms>\\n<release after ms>\\n<alert JSON>", as
    the announce step writes it (lua/outbox_announce.lua)."""
    condition, held_ms, after_ms, alert_json = text(raw).split("\n", 3)
    reason = reason_of(condition)
    held_at = _at_ms(int(held_ms))
    after_s = int(after_ms) / 1000 if after_ms else None
    return HeldAlert(
        alert=Alert.model_validate_json(alert_json),
        held_at=held_at,
        release_at=release_at(held_at, reason, after_s),
        reason=reason,
        reason_text=REASON_TEXT[reason],
    )


@dataclass(frozen=True)
class Decided:
    """What became of a decision asked for: taken now (with the outbox sequence it was
    queued at, 0 for a kill), taken before (`earlier`), or nothing held under that id."""

    taken: bool
    sequence: int = 0
    earlier: DeskAction | None = None


@dataclass(frozen=True)
class DeskState:
    """The desk as one read found it."""

    version: int
    held: list[HeldAlert]
    calls_held: list[CallHeld]
    actions: list[DeskAction]


class DeskHolds:
    """The desk's keys of one election namespace (streams.store.keys, DESK_*)."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.ns = namespace
        self._decide = redis.register_script(_DECIDE.source)

    def _key(self, name: str) -> str:
        return self.ns + name

    async def held(self) -> list[HeldAlert]:
        """Every alert on the desk, the longest held first."""
        raw: Any = await self.redis.hgetall(self._key(DESK_HELD))
        return sorted((held_alert(value) for value in raw.values()), key=_held_order)

    async def one_held(self, alert_id: str) -> HeldAlert | None:
        raw = await self.redis.hget(self._key(DESK_HELD), alert_id)
        return held_alert(raw) if raw is not None else None

    async def progress_with_holds(self) -> tuple[OutboxProgress, int]:
        """The outbox's cursors and how many held alerts will go by themselves, read together:
        a hold, a release and the outbox move in single steps, so what one read finds adds up
        (no release is between the two)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.mget(self._key(ANNOUNCED), self._key(OUTBOX_SEQ), self._key(PUBLISHED))
            pipe.hvals(self._key(DESK_HELD))
            cursors, held = await pipe.execute()
        announced, queued, published = (int(value or 0) for value in cursors)
        due = sum(1 for raw in held if held_alert(raw).release_at is not None)
        return OutboxProgress(announced, queued, published), due

    async def decision_on(self, alert_id: str) -> DeskAction | None:
        raw = await self.redis.hget(self._key(DESK_DECIDED), alert_id)
        return DeskAction.model_validate_json(raw) if raw is not None else None

    async def state(self, names: Mapping[str, str]) -> DeskState:
        """Holds, held calls (named from `names`, ONS id -> name), recent actions and the
        version, in one round trip."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key(DESK_VERSION))
            pipe.hgetall(self._key(DESK_HELD))
            pipe.hgetall(self._key(DESK_CALLS))
            pipe.xrevrange(self._key(DESK_ACTIONS), count=RECENT_ACTIONS)
            version, held, calls, actions = await pipe.execute()
        return DeskState(
            version=int(version or 0),
            held=sorted((held_alert(value) for value in held.values()), key=_held_order),
            calls_held=sorted(
                (
                    _call_held(text(ons_id), names.get(text(ons_id), text(ons_id)), value)
                    for ons_id, value in calls.items()
                ),
                key=lambda call: call.at,
            ),
            actions=[DeskAction.model_validate_json(fields[b"decision"]) for _, fields in actions],
        )

    async def decide(self, action: DeskAction, kill: bool, sent: Alert | None) -> Decided:
        """Take `action` on a held alert once: kill it, or send `sent` (as made, or edited)
        to the alerts topic through the outbox."""
        assert action.alert_id is not None
        keys = [
            self._key(name)
            for name in (
                DESK_HELD,
                DESK_DECIDED,
                DESK_KILLED,
                DESK_ACTIONS,
                DESK_VERSION,
                DESK_SENT,
                ANNOUNCED_IDS,
                OUTBOX_SEQ,
                OUTBOX,
            )
        ]
        args: list[str | bytes] = [
            action.alert_id,
            action.model_dump_json(exclude_none=True),
            "kill" if kill else "send",
            f"alert:{action.alert_id}",  # the id the announce step queues it under
        ]
        if sent is not None:
            args += ["alerts", sent.model_dump_json()]
        reply: Any = await self._decide(keys=keys, args=args)
        status = int(reply[0])
        if status == 1:
            return Decided(True, int(reply[1]))
        if status == 0:
            return Decided(False, earlier=DeskAction.model_validate_json(reply[1]))
        return Decided(False)

    async def hold_call(self, ons_id: str, action: DeskAction, hold: bool) -> bool:
        """Hold a seat's call (every alert about it waits) or let it go; False if nothing
        changed (held already, or not held)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if hold:
                record = {"by": action.by, "at": action.at.isoformat(), "note": action.detail}
                pipe.hsetnx(self._key(DESK_CALLS), ons_id, orjson.dumps(record))
            else:
                pipe.hdel(self._key(DESK_CALLS), ons_id)
            [changed] = await pipe.execute()
        if not changed:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self._key(DESK_ACTIONS),
                {"decision": action.model_dump_json(exclude_none=True)},
                maxlen=1000,
                approximate=True,
            )
            pipe.incr(self._key(DESK_VERSION))
            await pipe.execute()
        return True


def _held_order(held: HeldAlert) -> tuple[dt.datetime, str]:
    return held.held_at, held.alert.alert_id


def _call_held(ons_id: str, name: str, raw: bytes | str) -> CallHeld:
    kept = orjson.loads(raw)
    return CallHeld(
        constituency_id=ons_id,
        constituency_name=name,
        by=kept["by"],
        at=dt.datetime.fromisoformat(kept["at"]),
        note=kept.get("note") or "",
    )
