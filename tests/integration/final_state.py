"""A running worker ends at the official 2024 result: its API, then its live page in Chromium.

`python -m tests.integration.final_state URL` checks the worker at URL; scripts/check_wheel.sh
points it at the worker that `election-night` started from an installed wheel.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.browser import chromium
from tests.integration.test_live_page_browser import VIEWPORT, assert_page_shows, open_live_page
from tests.unit.ge2024 import (
    OFFICIAL_SEATS,
    OFFICIAL_VALID_VOTES,
    constituency_rows,
    votes_by_party,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def check_api(state: dict[str, Any], seats: dict[str, dict[str, Any]]) -> None:
    """Seats and votes by party, valid votes, and every seat's winner and majority."""
    assert state["seats_declared"] == state["total_seats"] == 650, state["seats_declared"]
    parties = state["parties"]
    assert {p["party"]: p["seats"] for p in parties if p["seats"]} == OFFICIAL_SEATS
    assert {p["party"]: p["votes"] for p in parties if p["votes"]} == dict(votes_by_party())
    assert state["total_votes"] == OFFICIAL_VALID_VOTES, state["total_votes"]
    rows = constituency_rows()
    assert seats.keys() == rows.keys()
    for ons_id, seat in seats.items():
        assert seat["winning_party"] == rows[ons_id]["First party"], ons_id
        assert seat["majority"] == int(rows[ons_id]["Majority"]), ons_id


def check_page(base_url: str, state: dict[str, Any], seats: dict[str, Any], shot: Path) -> None:
    """The page agrees with the API, says Labour won, and logs no error."""
    with chromium(viewport=VIEWPORT, timezone_id="Europe/London") as browser:
        page = browser.new_page()
        problems = open_live_page(page, base_url)
        assert_page_shows(page, state, seats)
        assert "Labour win a majority" in page.locator("#seats-headline").inner_text()
        page.screenshot(path=str(shot))
        assert problems.errors == [], problems.errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="the worker, e.g. http://127.0.0.1:6066")
    parser.add_argument("--screenshot", type=Path, default=ARTIFACTS / "final-state-page.png")
    args = parser.parse_args(argv)
    base_url = args.url.rstrip("/")
    state = get_json(base_url + "/api/state")
    seats = get_json(base_url + "/api/seats")
    check_api(state, seats)
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    check_page(base_url, state, seats, args.screenshot)
    won = {p["party"]: p["seats"] for p in state["parties"]}
    print(
        f"final state: Lab {won['Lab']}, Con {won['Con']}, LD {won['LD']}; "
        f"{state['seats_declared']}/{state['total_seats']} declared; "
        f"{state['total_votes']:,} valid votes; page {args.screenshot}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
