"""Message contracts: pydantic models of everything the product reads or writes."""

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.common import SCHEMA_VERSION, Party
from schemas.declaration import Candidate, Declaration, DeclarationKind
from schemas.exit_poll import ExitPoll, ExitPollProjection
from schemas.feed_refusal import FeedRefusal
from schemas.rejection import Rejection, RejectionReason
from schemas.results import CandidateResult, PartyTally, SeatResult, StateOfParties

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertPriority",
    "AlertType",
    "Candidate",
    "CandidateResult",
    "Declaration",
    "DeclarationKind",
    "ExitPoll",
    "ExitPollProjection",
    "FeedRefusal",
    "Party",
    "PartyTally",
    "Rejection",
    "RejectionReason",
    "SeatResult",
    "StateOfParties",
]
