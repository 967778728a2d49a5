"""Names reach the terminal as text: rich markup in a party or candidate name is shown, not run."""

from __future__ import annotations

import io

from rich.console import Console

from schemas.results import PartyTally, StateOfParties
from scripts.state_table import state_table

MARKUP = "[bold red]x[/]"
LINK = "[link=https://example.org]click[/link]"


def rendered(state: StateOfParties) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None, force_terminal=False).print(state_table(state))
    return out.getvalue()


def test_markup_in_party_names_and_codes_renders_literally() -> None:
    state = StateOfParties(
        election_id="parl.2024-07-04",
        rehearsal=False,
        sequence=3,
        seats_declared=326,
        total_seats=650,
        total_votes=1000,
        majority_party=MARKUP,
        parties=[
            PartyTally(party=MARKUP, name=LINK, seats=326, votes=600, share=0.6),
            PartyTally(party="[b]", name="[i]quiet[/i]", seats=0, votes=400, share=0.4),
        ],
    )
    text = rendered(state)
    # The title names the majority party as sent; the row names it and its code as sent.
    assert f"326/650 declared, {MARKUP} majority" in text
    assert f"{LINK} ({MARKUP})" in text
    assert "click" in text and "https://example.org" in text


def test_a_plain_state_still_reads_as_before() -> None:
    state = StateOfParties(
        election_id="parl.2024-07-04",
        rehearsal=False,
        sequence=1,
        seats_declared=1,
        total_votes=10,
        parties=[PartyTally(party="Lab", name="Labour", seats=1, votes=10, share=1.0)],
    )
    text = rendered(state)
    assert "State of the parties: 1/650 declared, 326 for a majority" in text
    assert "Labour (Lab)" in text
    assert "REHEARSAL" not in text
    # A rehearsal's state says so first, as night.sh prints it.
    rehearsal = rendered(state.model_copy(update={"rehearsal": True}))
    assert "REHEARSAL · State of the parties: 1/650 declared" in rehearsal
