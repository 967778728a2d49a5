"""PA's election messages as read from its XML, in PA's own terms (ids, abbreviations, percentages).

The names follow PA's published format: a root element per message type carrying `revision`
and `declarationTime`, an `Election`, then a `Constituency` (`number`, `name`, `electorate`,
`turnout`, `majority`, `gainOrHold`, `winningParty`, `sittingParty`) with its `Candidate`s
(`paId`, `firstName`, `surname`, `elected`, `previousSittingMember`), each with its `Party`
(`paId`, `name`, `abbreviation`, `votes`, `percentageShare`). Two attributes are ours, because
a declaration needs them and PA's pages do not name them: `rejectedBallots` and `tieDeclared`
on the `Constituency`. Figures a file leaves out are None; mapping PA's ids to ours is
`mapping.py`'s job, not this module's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class PaMessageType(StrEnum):
    """A PA message by the name of its root element."""

    RUSH = "FirstPastThePostRush"  # winner known, votes to follow
    RESULT = "FirstPastThePostResult"  # full figures; a higher revision corrects a lower one
    RECOUNT = "Recount"  # a recount announced, no one elected yet
    STATE_OF_PARTIES = "FirstPastThePostStateOfParties"  # PA's national totals


SEAT_MESSAGE_TYPES = frozenset({PaMessageType.RUSH, PaMessageType.RESULT, PaMessageType.RECOUNT})


@dataclass(frozen=True)
class PaElection:
    name: str
    date: dt.date


@dataclass(frozen=True)
class PaParty:
    """A candidate's party and, once counted, the candidate's votes (PA puts them here)."""

    pa_id: int
    name: str
    abbreviation: str
    votes: int | None = None
    percentage_share: float | None = None


@dataclass(frozen=True)
class PaCandidate:
    pa_id: int
    first_name: str
    surname: str
    party: PaParty
    elected: bool = False
    previous_sitting_member: bool = False

    @property
    def name(self) -> str:
        """The name as the Commons Library's files join it: first name, space, surname."""
        return f"{self.first_name} {self.surname}".strip()


@dataclass(frozen=True)
class PaConstituency:
    number: int
    name: str
    candidates: tuple[PaCandidate, ...]
    electorate: int | None = None
    # Valid votes, the candidates' votes added up; rejected ballots are counted apart.
    turnout: int | None = None
    rejected_ballots: int | None = None
    majority: int | None = None
    gain_or_hold: str | None = None
    winning_party: str | None = None
    sitting_party: str | None = None
    tie_declared: bool = False


@dataclass(frozen=True)
class PaSeatMessage:
    """A rush, result or recount notice for one constituency."""

    message_type: PaMessageType
    revision: int
    declaration_time: dt.datetime
    election: PaElection
    constituency: PaConstituency


@dataclass(frozen=True)
class PaPartyTotal:
    """One party's line in PA's state of the parties; PA leaves zero seats, gains and losses out."""

    pa_id: int
    name: str
    abbreviation: str
    total_seats: int = 0
    gains: int = 0
    losses: int = 0
    total_votes: int = 0
    percentage_share: float | None = None
    percentage_change: float | None = None


@dataclass(frozen=True)
class PaStateOfParties:
    """PA's national totals, a cross-check against our own tallies.

    PA's own files number them in the file name only; ours carry `revision` on the root too.
    """

    number_of_results: int
    total_constituencies: int
    total_votes: int
    election: PaElection
    parties: tuple[PaPartyTotal, ...]
    revision: int | None = None
    declaration_time: dt.datetime | None = None


PaMessage = PaSeatMessage | PaStateOfParties
