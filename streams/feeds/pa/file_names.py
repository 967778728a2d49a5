"""PA's file names, `{election}_{type}_{constituency}_{revision}.xml`, read, written and checked.

The election part may hold underscores (`Test_General_Election`), so a name is read from its
end. The type is `rush`, `result` or `recount` for a seat, `SOP` for the state of the
parties, which has no constituency: `{election}_SOP_{revision}.xml`. Anything else, hidden
files (an FTP upload in progress) and paths included, is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.feeds.pa.messages import PaMessage, PaMessageType, PaSeatMessage
from streams.feeds.pa.refusals import Refusal, RefusalReason, quoted

FILE_TYPES: dict[PaMessageType, str] = {
    PaMessageType.RUSH: "rush",
    PaMessageType.RESULT: "result",
    PaMessageType.RECOUNT: "recount",
    PaMessageType.STATE_OF_PARTIES: "SOP",
}
_BY_FILE_TYPE = {token: message_type for message_type, token in FILE_TYPES.items()}

_ELECTION = r"(?P<election>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)"
_SEAT_FILE = re.compile(
    _ELECTION
    + r"_(?P<type>rush|result|recount)_(?P<seat>[0-9]{1,4})_(?P<revision>[0-9]{1,7})\.xml",
    re.ASCII,
)
_STATE_FILE = re.compile(_ELECTION + r"_SOP_(?P<revision>[0-9]{1,7})\.xml", re.ASCII)


@dataclass(frozen=True)
class PaFileName:
    election: str
    message_type: PaMessageType
    revision: int
    seat_number: int | None = None  # None for the state of the parties


def parse_file_name(name: str) -> PaFileName | Refusal:
    """What a file's name says it holds, or why the name is refused."""
    seat_file = _SEAT_FILE.fullmatch(name)
    if seat_file:
        return PaFileName(
            election=seat_file["election"],
            message_type=_BY_FILE_TYPE[seat_file["type"]],
            revision=int(seat_file["revision"]),
            seat_number=int(seat_file["seat"]),
        )
    state_file = _STATE_FILE.fullmatch(name)
    if state_file:
        return PaFileName(
            election=state_file["election"],
            message_type=PaMessageType.STATE_OF_PARTIES,
            revision=int(state_file["revision"]),
        )
    return Refusal(
        RefusalReason.PA_BAD_FILE_NAME,
        f"{quoted(name)} is not {{election}}_{{rush|result|recount}}_{{seat}}_{{revision}}.xml "
        "or {election}_SOP_{revision}.xml",
    )


def seat_file_name(
    election: str, message_type: PaMessageType, seat_number: int, revision: int
) -> str:
    """The name PA gives the file of one seat's rush, result or recount notice."""
    return f"{election}_{FILE_TYPES[message_type]}_{seat_number}_{revision}.xml"


def state_file_name(election: str, revision: int) -> str:
    """The name PA gives a state of the parties file."""
    return f"{election}_SOP_{revision}.xml"


_COMPARED = {"message_type": "type", "seat_number": "seat", "revision": "revision"}


def check_file_name(file_name: PaFileName, message: PaMessage) -> Refusal | None:
    """A file whose content says another type, seat or revision than its name is refused:
    one of the two is wrong, and nothing tells which."""
    if isinstance(message, PaSeatMessage):
        inside = PaFileName(
            file_name.election,
            message.message_type,
            message.revision,
            message.constituency.number,
        )
    else:
        # PA's own state of the parties files carry their revision in the name only.
        revision = file_name.revision if message.revision is None else message.revision
        inside = PaFileName(file_name.election, PaMessageType.STATE_OF_PARTIES, revision)
    differences = [
        f"{label} {getattr(file_name, field)} in the name, {getattr(inside, field)} inside"
        for field, label in _COMPARED.items()
        if getattr(file_name, field) != getattr(inside, field)
    ]
    if differences:
        return Refusal(RefusalReason.PA_FILE_NAME_MISMATCH, "; ".join(differences))
    return None
