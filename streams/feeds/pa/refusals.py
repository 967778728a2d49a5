"""Why a PA file is refused: a machine reason for counters and a readable detail for the desk."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A detail quotes what the file said; a hostile file must not fill logs or dead letters.
MAX_DETAIL_CHARS = 500
MAX_QUOTED_CHARS = 80


class RefusalReason(StrEnum):
    XML_TOO_LARGE = "xml_too_large"
    XML_DTD_FORBIDDEN = "xml_dtd_forbidden"
    XML_ENTITIES_FORBIDDEN = "xml_entities_forbidden"
    # Not XML at all: truncated, half uploaded, empty, or in an encoding expat cannot read.
    XML_MALFORMED = "xml_malformed"
    PA_BAD_FILE_NAME = "pa_bad_file_name"
    PA_FILE_NAME_MISMATCH = "pa_file_name_mismatch"
    PA_UNKNOWN_MESSAGE = "pa_unknown_message"
    PA_BAD_STRUCTURE = "pa_bad_structure"
    PA_MISSING_FIELD = "pa_missing_field"
    PA_BAD_NUMBER = "pa_bad_number"
    PA_BAD_VALUE = "pa_bad_value"
    PA_WRONG_ELECTION = "pa_wrong_election"
    PA_UNKNOWN_SEAT = "pa_unknown_seat"
    PA_UNKNOWN_CANDIDATE = "pa_unknown_candidate"
    PA_UNKNOWN_PARTY = "pa_unknown_party"
    PA_STALE_REVISION = "pa_stale_revision"
    PA_REVISION_ALREADY_INGESTED = "pa_revision_already_ingested"
    PA_FIGURES_DO_NOT_ADD_UP = "pa_figures_do_not_add_up"
    PA_INVALID_DECLARATION = "pa_invalid_declaration"


@dataclass(frozen=True)
class Refusal:
    """A file the ingest will not pass on, and why."""

    reason: RefusalReason
    detail: str

    def __post_init__(self) -> None:
        if len(self.detail) > MAX_DETAIL_CHARS:
            object.__setattr__(self, "detail", self.detail[: MAX_DETAIL_CHARS - 3] + "...")


class Refused(Exception):
    """Raised deep inside a reader and turned back into its Refusal at the public function."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(detail)
        self.refusal = Refusal(reason, detail)


def quoted(value: object) -> str:
    """What a file said, safe to show: repr (no control characters), cut short."""
    text = repr(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 3] + "..."
