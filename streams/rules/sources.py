"""Several sources per seat: whose figures count, what each said, and where two disagree."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.declaration import Declaration
from schemas.source_conflict import FieldDifference, SourceCandidate, SourceConflict, SourceFigures
from streams.rules.reference import ConstituencyRef

# A journalist's own entry first, then PA, then the replay of the files; anything else after.
DEFAULT_SOURCE_PRECEDENCE = ("desk", "pa", "replay")
# Unlisted sources rank here, after every listed one, and among themselves by name.
UNLISTED_RANK = 1_000
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")
MAX_NAME_CHARS = 40

# The fields two sources are compared on, in the order a desk reads them.
WINNER = "winner"
MAJORITY = "majority"
DECLARED_AT = "declared_at"
VOTES = "votes"  # + ":" + person id


@dataclass(frozen=True)
class SourceRules:
    """How sources are weighed: who counts first, and how far times may differ and agree."""

    precedence: tuple[str, ...] = DEFAULT_SOURCE_PRECEDENCE
    time_tolerance_ms: int = 60_000


DEFAULT_SOURCE_RULES = SourceRules()


@functools.lru_cache(maxsize=256)
def source_name(source: str) -> str:
    """Who relayed a declaration, as precedence names it: `pa:rehearsal` -> `pa`.

    The text before the first colon, lower case, with anything but letters, digits, `-` and
    `_` taken out, so it is safe inside the JSON Lua builds by concatenation. Remembered: a
    night has a handful of sources, and every declaration asks for its own three times.
    """
    name = _NOT_NAME.sub("", source.split(":", 1)[0].lower())[:MAX_NAME_CHARS]
    return name or "unnamed"


def source_rank(name: str, precedence: Sequence[str]) -> tuple[int, str]:
    """Lower counts first; the same order as `precedes` in lua/tally_apply.lua."""
    try:
        return precedence.index(name), name
    except ValueError:
        return UNLISTED_RANK, name


def precedence_text(precedence: Sequence[str]) -> str:
    """The precedence as the apply script takes it: names joined by commas."""
    return ",".join(source_name(name) for name in precedence)


@dataclass(frozen=True)
class SourceView:
    """What one source last said of a seat: enough to tell whether two sources agree."""

    source: str
    revision: int
    kind: str
    declared_at_ms: int
    winner: int | None = None  # Democracy Club person id; none in a recount notice
    majority: int | None = None  # with full figures only
    votes: Mapping[int, int] | None = None  # person id -> votes, with full figures only

    @property
    def declared_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.declared_at_ms / 1000, dt.UTC)

    def encode(self) -> bytes:
        """As stored beside the seat: JSON Lua copies whole and never decodes."""
        body: dict[str, Any] = {"r": self.revision, "k": self.kind, "t": self.declared_at_ms}
        if self.winner is not None:
            body["w"] = self.winner
        if self.majority is not None:
            body["m"] = self.majority
        if self.votes is not None:
            body["v"] = {str(person): votes for person, votes in sorted(self.votes.items())}
        return orjson.dumps(body)

    @classmethod
    def decode(cls, source: str, body: Mapping[str, Any]) -> SourceView:
        votes = body.get("v")
        return cls(
            source=source,
            revision=int(body["r"]),
            kind=str(body["k"]),
            declared_at_ms=int(body["t"]),
            winner=body.get("w"),
            majority=body.get("m"),
            votes={int(p): int(v) for p, v in votes.items()} if votes is not None else None,
        )


def source_view(declaration: Declaration) -> SourceView:
    """The view one declaration gives of its seat, for its source."""
    winner = declaration.winner
    votes = majority = None
    if declaration.has_full_figures:
        votes = {c.person_id: c.votes or 0 for c in declaration.candidates}
        ranked = sorted(votes.values(), reverse=True)
        majority = ranked[0] - (ranked[1] if len(ranked) > 1 else 0)
    return SourceView(
        source=source_name(declaration.source),
        revision=declaration.revision,
        kind=declaration.kind.value,
        declared_at_ms=round(declaration.declared_at.timestamp() * 1000),
        winner=winner.person_id if winner else None,
        majority=majority,
        votes=votes,
    )


def views_from_json(raw: bytes | str) -> dict[str, SourceView]:
    """The views stored beside a seat, as the change log carries them (source -> view)."""
    decoded = orjson.loads(raw) if raw else {}
    return {source: SourceView.decode(source, body) for source, body in decoded.items()}


@dataclass(frozen=True)
class Difference:
    """One field two sources give differently: `votes:<person id>`, `winner`, `majority`..."""

    field: str
    first: int | str | None
    second: int | str | None


@dataclass(frozen=True)
class Disagreement:
    """Two sources' latest revisions of a seat that do not agree; `first` ranks higher."""

    first: SourceView
    second: SourceView
    differences: tuple[Difference, ...]

    @property
    def conflict_id(self) -> str:
        """Names this pair of revisions: a new revision of either is a new conflict."""
        return (
            f"{self.first.source}:{self.first.revision}:{self.second.source}:{self.second.revision}"
        )


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def differences(a: SourceView, b: SourceView, tolerance_ms: int) -> tuple[Difference, ...]:
    """Where two views differ, on what both of them say (a rush has no votes to differ on)."""
    found: list[Difference] = []
    if a.winner is not None and b.winner is not None and a.winner != b.winner:
        found.append(Difference(WINNER, a.winner, b.winner))
    if a.majority is not None and b.majority is not None and a.majority != b.majority:
        found.append(Difference(MAJORITY, a.majority, b.majority))
    # A recount notice is dated when the recount was called, not when the seat declared.
    timed = a.kind != "recount" and b.kind != "recount"
    if timed and abs(a.declared_at_ms - b.declared_at_ms) > tolerance_ms:
        found.append(Difference(DECLARED_AT, _iso(a.declared_at_ms), _iso(b.declared_at_ms)))
    if a.votes is not None and b.votes is not None:
        for person in sorted(a.votes.keys() | b.votes.keys()):
            first, second = a.votes.get(person), b.votes.get(person)
            if first != second:
                found.append(Difference(f"{VOTES}:{person}", first, second))
    return tuple(found)


def disagreements(
    views: Mapping[str, SourceView], precedence: Sequence[str], tolerance_ms: int
) -> dict[str, Disagreement]:
    """Every pair of sources that disagree on a seat, by conflict id, the higher-ranked first."""
    ranked = sorted(views.values(), key=lambda view: source_rank(view.source, precedence))
    found: dict[str, Disagreement] = {}
    for at, first in enumerate(ranked):
        for second in ranked[at + 1 :]:
            differ = differences(first, second, tolerance_ms)
            if differ:
                disagreement = Disagreement(first, second, differ)
                found[disagreement.conflict_id] = disagreement
    return found


def on_air(views: Mapping[str, SourceView], precedence: Sequence[str]) -> str | None:
    """The source whose figures count for the seat: the highest-ranked that has reported."""
    if not views:
        return None
    return min(views, key=lambda name: source_rank(name, precedence))


AGREED: Literal["agreed"] = "agreed"
SUPERSEDED: Literal["superseded"] = "superseded"


@dataclass(frozen=True)
class ConflictTurn:
    """A disagreement that began with a change (`resolution` None) or ended with it."""

    disagreement: Disagreement
    resolution: Literal["agreed", "superseded"] | None = None


def conflict_turns(
    before: Mapping[str, SourceView], after: Mapping[str, SourceView], rules: SourceRules
) -> list[ConflictTurn]:
    """What one source's new revision did to the seat's conflicts: those it ended, then those
    it began. A conflict ends `agreed` when its two sources now agree, else `superseded` (a
    newer revision of one of them disagrees anew, and begins a conflict of its own)."""
    was = disagreements(before, rules.precedence, rules.time_tolerance_ms)
    now = disagreements(after, rules.precedence, rules.time_tolerance_ms)
    now_pairs = {(d.first.source, d.second.source) for d in now.values()}
    turns = [
        ConflictTurn(
            old,
            SUPERSEDED if (old.first.source, old.second.source) in now_pairs else AGREED,
        )
        for conflict_id, old in was.items()
        if conflict_id not in now
    ]
    turns += [ConflictTurn(new) for conflict_id, new in now.items() if conflict_id not in was]
    return turns


def _candidate(ref: ConstituencyRef, person_id: int, votes: int | None) -> SourceCandidate:
    known = ref.candidates.get(person_id)
    return SourceCandidate(
        person_id=person_id,
        name=known.name if known else f"person {person_id}",
        party=known.party.abbreviation if known else None,
        votes=votes,
    )


def source_figures(view: SourceView, ref: ConstituencyRef) -> SourceFigures:
    """One source's view of a seat, with the candidates' names and parties."""
    votes = view.votes or {}
    return SourceFigures(
        source=view.source,
        revision=view.revision,
        kind=view.kind,
        declared_at=view.declared_at,
        winner=_candidate(ref, view.winner, votes.get(view.winner))
        if view.winner is not None
        else None,
        majority=view.majority,
        candidates=[
            _candidate(ref, person, count)
            for person, count in sorted(votes.items(), key=lambda item: (-item[1], item[0]))
        ],
    )


def _label(field: str, ref: ConstituencyRef) -> str:
    if not field.startswith(VOTES + ":"):
        return field.replace("_", " ")
    candidate = _candidate(ref, int(field.split(":", 1)[1]), None)
    return f"votes of {candidate.name} ({candidate.party or 'no party'})"


def conflict_message(
    turn: ConflictTurn,
    ref: ConstituencyRef,
    election_id: str,
    counted: str | None,
    sequence: int,
    rehearsal: bool,
) -> SourceConflict:
    """The newsroom's message of a conflict opened or ended, with both sources' figures."""
    disagreement = turn.disagreement
    first, second = disagreement.first, disagreement.second
    return SourceConflict(
        election_id=election_id,
        rehearsal=rehearsal,
        conflict_id=disagreement.conflict_id,
        status="open" if turn.resolution is None else "resolved",
        resolution=turn.resolution,
        constituency_id=ref.ons_id,
        constituency_name=ref.name,
        on_air=counted,
        sources=[source_figures(first, ref), source_figures(second, ref)],
        differences=[
            FieldDifference(
                field=difference.field,
                label=_label(difference.field, ref),
                values={first.source: difference.first, second.source: difference.second},
            )
            for difference in disagreement.differences
        ],
        sequence=sequence,
    )
