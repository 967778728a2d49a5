"""PA's state of the parties against our own tallies, party by party: what differs, if anything.

Compared only at the same moment: the same number of declared seats, with every message the
ingest sent applied (four partitions are applied side by side, so the same number of seats
alone could be other seats). Seats, gains, losses and votes are compared exactly; shares are
left out, since PA rounds them and they follow from the votes. PA counts a party once under
one of its ids (Labour and Labour and Co-operative together), so its lines are added up by
our party code; a party either side does not list has zero of everything there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from schemas.feed_check import Figure, FigureDifference, PartyDifference
from schemas.results import PartyTally, StateOfParties
from streams.feeds.pa.mapping import FeedMapping
from streams.feeds.pa.messages import PaPartyTotal, PaStateOfParties

FIGURES: tuple[Figure, ...] = ("seats", "gains", "losses", "votes")


@dataclass(frozen=True)
class Agreed:
    outcome: ClassVar[str] = "agreed"


@dataclass(frozen=True)
class Disagreed:
    outcome: ClassVar[str] = "disagreed"
    differences: tuple[PartyDifference, ...]


@dataclass(frozen=True)
class NotCompared:
    """Our tallies were not at PA's moment: other seats declared, or ours still applying, or
    not to be read at all (`ours` None)."""

    outcome: ClassVar[str] = "not_compared"
    ours: int | None  # seats declared in our tallies
    theirs: int  # in PA's state of the parties
    unapplied: int  # messages the ingest sent that our tallies had not applied yet


Verdict = Agreed | Disagreed | NotCompared


def unapplied(applied: Mapping[int, int], sent: Mapping[int, int]) -> int:
    """Messages sent (last offset per partition) that our tallies have not applied yet."""
    return sum(max(offset - applied.get(partition, -1), 0) for partition, offset in sent.items())


def compare(
    pa: PaStateOfParties, ours: StateOfParties, mapping: FeedMapping, still_to_apply: int = 0
) -> Verdict:
    """PA's totals against ours, if ours are at PA's moment (see the module's docstring)."""
    if still_to_apply or ours.seats_declared != pa.number_of_results:
        return NotCompared(ours.seats_declared, pa.number_of_results, still_to_apply)
    differences = party_differences(pa, ours, mapping)
    return Disagreed(differences) if differences else Agreed()


def party_differences(
    pa: PaStateOfParties, ours: StateOfParties, mapping: FeedMapping
) -> tuple[PartyDifference, ...]:
    """Each party whose figures differ, by our party code, then each PA party id the feed's
    mapping does not know (it could not be checked), by id."""
    listed: dict[str, _Listed] = {}
    unknown: list[PartyDifference] = []
    for line in sorted(pa.parties, key=lambda line: line.pa_id):
        figures = _pa_figures(line)
        party = mapping.parties.get(line.pa_id)
        if party is None:
            differing = _differing(figures, {})
            unknown.append(
                PartyDifference(
                    party=None, feed_party_id=line.pa_id, name=line.name, figures=differing
                )
            )
        elif party.abbreviation in listed:
            counted = listed[party.abbreviation].figures
            for figure, value in figures.items():
                counted[figure] += value
        else:
            listed[party.abbreviation] = _Listed(line.pa_id, line.name, figures)
    tallies = {tally.party: tally for tally in ours.parties}
    differences = []
    for code in sorted(listed.keys() | tallies.keys()):
        theirs, tally = listed.get(code), tallies.get(code)
        differing = _differing(
            theirs.figures if theirs else {}, _our_figures(tally) if tally else {}
        )
        if differing:
            differences.append(
                PartyDifference(
                    party=code,
                    feed_party_id=theirs.pa_id if theirs else None,
                    name=tally.name if tally else theirs.name if theirs else code,
                    figures=differing,
                )
            )
    return (*differences, *unknown)


@dataclass(frozen=True)
class _Listed:
    """A party as PA lists it, its lines added up: the lowest of its ids, and that line's name."""

    pa_id: int
    name: str
    figures: dict[Figure, int]


def _pa_figures(line: PaPartyTotal) -> dict[Figure, int]:
    return {
        "seats": line.total_seats,
        "gains": line.gains,
        "losses": line.losses,
        "votes": line.total_votes,
    }


def _our_figures(tally: PartyTally) -> dict[Figure, int]:
    return {
        "seats": tally.seats,
        "gains": tally.gains,
        "losses": tally.losses,
        "votes": tally.votes,
    }


def _differing(feed: Mapping[Figure, int], ours: Mapping[Figure, int]) -> list[FigureDifference]:
    return [
        FigureDifference(figure=figure, feed=feed.get(figure, 0), ours=ours.get(figure, 0))
        for figure in FIGURES
        if feed.get(figure, 0) != ours.get(figure, 0)
    ]


def told(differences: Iterable[PartyDifference]) -> str:
    """The differences in a line, for the log: `Lab seats 411 (ours 410), votes ...`."""
    return "; ".join(_told(difference) for difference in differences)


def _told(difference: PartyDifference) -> str:
    figures = ", ".join(f"{f.figure} {f.feed} (ours {f.ours})" for f in difference.figures)
    if difference.party is None:
        unknown = f"PA party {difference.feed_party_id} is not in the mapping"
        return f"{unknown}: {figures}" if figures else unknown
    return f"{difference.party} {figures}"
