"""The state of the parties as a rich table, shared by the night runner and the terminal view."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from schemas.results import StateOfParties
from streams.rules.alert_text import UK_TIME


def _signed(value: int) -> str:
    return f"{value:+d}" if value else "0"


def state_table(state: StateOfParties, limit: int | None = None) -> Table:
    """Seats, change, votes and share per party, with the majority line in the title."""
    declared = f"{state.seats_declared}/{state.total_seats} declared"
    leader = (
        f"{state.majority_party} majority"
        if state.majority_party
        else f"{state.majority_line} for a majority"
    )
    table = Table(
        # Text, not a markup string: a party code like "[red]x" must show as it is.
        title=Text(
            f"{'REHEARSAL · ' if state.rehearsal else ''}State of the parties: {declared}, {leader}"
        ),
        # UK clock time whatever offset the time came with (the state in Redis keeps UTC).
        caption=f"sequence {state.sequence}"
        + (f", as of {state.as_of.astimezone(UK_TIME):%a %d %b %H:%M}" if state.as_of else ""),
    )
    for heading in ("Party", "Seats", "Change", "Gains", "Losses", "Votes", "Share", "+/-"):
        table.add_column(heading, justify="left" if heading == "Party" else "right")
    # Seat winners by name; everyone else in one line, as a broadcast graphic would.
    shown = [t for t in state.parties if t.seats] if limit is None else state.parties[:limit]
    others = [t for t in state.parties if t not in shown]
    for tally in shown:
        share_change = (
            f"{tally.share_change * 100:+.1f}" if tally.share_change is not None else "n/a"
        )
        style = "bold" if tally.seats >= state.majority_line else ""
        table.add_row(
            Text(f"{tally.name} ({tally.party})", style=style, overflow="ellipsis", no_wrap=True),
            str(tally.seats),
            _signed(tally.seats_change),
            str(tally.gains),
            str(tally.losses),
            f"{tally.votes:,}",
            f"{tally.share * 100:.1f}%",
            share_change,
        )
    if others:
        votes = sum(t.votes for t in others)
        share = votes / state.total_votes if state.total_votes else 0.0
        table.add_row(
            Text(f"Others ({len(others)} parties)"),
            "0",
            "",
            "",
            "",
            f"{votes:,}",
            f"{share * 100:.1f}%",
            "",
        )
    turnout = f"{state.turnout * 100:.1f}%" if state.turnout is not None else "n/a"
    table.add_section()
    table.add_row(
        "Total", str(state.seats_declared), "", "", "", f"{state.total_votes:,}", "", turnout
    )
    return table
