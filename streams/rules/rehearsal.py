"""Rehearsal or live: the worker's mode, and who is told a rehearsal's alerts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

# As ELECTION_MODE: a worker takes only the messages of its own mode.
Mode = Literal["rehearsal", "live"]


def mode_of(rehearsal: bool) -> Mode:
    return "rehearsal" if rehearsal else "live"


def is_rehearsal_output(output: Mapping[str, object]) -> bool:
    """An output, as its JSON, is a rehearsal's unless it says false: one that does not say
    (queued before outputs carried the flag) is never taken for the live night's."""
    return output.get("rehearsal") is not False


def withheld(alert: Mapping[str, object], takes_rehearsals: bool) -> bool:
    """A rehearsal's alert reaches only those who asked for rehearsals: shown to the public
    as news, it would be an incident."""
    return not takes_rehearsals and is_rehearsal_output(alert)
