"""Which alerts wait on the desk for an editor, why, and for how long before they go anyway."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from schemas.alert import Alert, AlertType

# People of note whose result interrupts programming (flash by default): no machine pushes
# "Former prime minister defeated" to millions of phones before someone has looked at it.
DEFAULT_HELD_TYPES: frozenset[AlertType] = frozenset(
    {AlertType.FORMER_PRIME_MINISTER_DEFEATED, AlertType.PRIME_MINISTER_RESULT}
)
# A rehearsal runs unattended unless someone is at the desk: its holds go after this long.
REHEARSAL_AUTO_RELEASE_S = 20.0

# Why an alert waits, in the order they are looked at: the first that holds is the reason.
HoldReason = Literal["seat_not_called", "amends_killed", "amends_held", "policy"]
REASON_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "seat_not_called": "an editor holds this seat's call",
        "amends_killed": "it amends an alert the desk killed",
        "amends_held": "it amends an alert still on the desk",
        "policy": "its type waits for an editor",
    }
)
# Reasons a timed release may end: a held call or a killed original waits for a person.
RELEASABLE: frozenset[str] = frozenset({"policy", "amends_held"})


class HoldPolicyRefused(ValueError):
    """A desk policy setting that names an unknown type or policy."""


@dataclass(frozen=True)
class HoldPolicy:
    """Per alert type: held or not, and after how long a held one goes by itself (None:
    never; it waits for an editor)."""

    held: Mapping[AlertType, float | None] = field(
        default_factory=lambda: dict.fromkeys(DEFAULT_HELD_TYPES)
    )
    auto_release_s: float | None = None  # for "hold" with no time of its own, and amendments

    def release_after_s(self, alert: Alert) -> float | None:
        own = self.held.get(alert.type)
        return own if own is not None else self.auto_release_s


# Nothing held: the publisher's rules as tests and tools call them without a desk.
NO_HOLDS = HoldPolicy(held={}, auto_release_s=None)


def hold_policy(
    overrides: Mapping[str, str], auto_release_s: float | None, rehearsal: bool
) -> HoldPolicy:
    """The default policy overlaid by `overrides` (type -> "auto", "hold" or "hold:<s>").

    `auto_release_s` None: a rehearsal's holds go after REHEARSAL_AUTO_RELEASE_S, a live
    night's wait for an editor; 0: never by themselves.
    """
    held: dict[AlertType, float | None] = dict.fromkeys(DEFAULT_HELD_TYPES)
    for type_name, policy in overrides.items():
        try:
            alert_type = AlertType(type_name)
        except ValueError:
            known = ", ".join(t.value for t in AlertType)
            raise HoldPolicyRefused(
                f"desk_alert_policy: unknown alert type {type_name!r} ({known})"
            ) from None
        kind, _, seconds = policy.partition(":")
        if kind == "auto" and not seconds:
            held.pop(alert_type, None)
        elif kind == "hold":
            held[alert_type] = _seconds(type_name, seconds) if seconds else None
        else:
            raise HoldPolicyRefused(
                f"desk_alert_policy: {type_name}: {policy!r} is not auto, hold or hold:<seconds>"
            )
    if auto_release_s is None:
        auto_release_s = REHEARSAL_AUTO_RELEASE_S if rehearsal else 0.0
    return HoldPolicy(held, auto_release_s or None)


def _seconds(type_name: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86_400:
        raise HoldPolicyRefused(
            f"desk_alert_policy: {type_name}: hold:{text} is not 0 < seconds <= 86400"
        )
    return seconds


def hold_conditions(alert: Alert, policy: HoldPolicy) -> list[str]:
    """What would hold `alert`, strongest first, as the outbox's announce step checks them
    against the desk's state in Redis (streams/store/lua/outbox_announce.lua):
    `seat:<ONS id>` a held call, `killed:<id>` and `held:<id>` an alert it amends, `*` its
    type. Empty: it goes out at once whatever the desk holds."""
    if alert.audience != "public":
        return []  # the newsroom's own alerts reach no app user: nothing to hold
    conditions = []
    if alert.constituency_id is not None:
        conditions.append(f"seat:{alert.constituency_id}")
    conditions += [f"killed:{alert_id}" for alert_id in alert.supersedes]
    conditions += [f"held:{alert_id}" for alert_id in alert.supersedes]
    if alert.type in policy.held:
        conditions.append("*")
    return conditions


def reason_of(condition: str) -> HoldReason:
    """The reason a condition the announce step found true stands for."""
    kind = condition.partition(":")[0]
    if kind == "seat":
        return "seat_not_called"
    if kind == "killed":
        return "amends_killed"
    if kind == "held":
        return "amends_held"
    return "policy"


def release_at(
    held_at: dt.datetime, reason: str, release_after_s: float | None
) -> dt.datetime | None:
    """When a held alert goes by itself, or None if only an editor can send it."""
    if reason not in RELEASABLE or release_after_s is None:
        return None
    return held_at + dt.timedelta(seconds=release_after_s)
