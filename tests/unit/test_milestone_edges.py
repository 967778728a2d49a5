"""The milestone rules at their edges, on states worked out by hand.

Every expected value below is a literal, with its arithmetic beside it; none is computed by
the rules under test. The register is the real 2024 one: 650 seats, a majority at 326, the
Speaker's seat (Chorley) held by party 'Spk'. "Rival" is the other party with most seats,
never the Speaker; independents ('Ind') count as a rival (a bloc is the worst case) but never
hold a milestone themselves.

- cannot be overtaken: seats >= rival + undeclared (a tie at worst)
- largest party certain: seats > rival + undeclared (no tie possible)
- majority: seats >= 326, and `majority_party` of the state of the parties names that party
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from streams.rules.alerts import cannot_be_overtaken, has_majority, largest_party_certain
from streams.rules.reference import Register, load_register
from streams.rules.tally import state_of_parties
from tests.conftest import DATA_DIR

TOTAL_SEATS = 650


@dataclass(frozen=True)
class Seats:
    """A party's seats (the PartySeats protocol)."""

    party: str
    seats: int


@dataclass(frozen=True)
class Picture:
    """The nation's seats (the SeatPicture protocol), built by hand."""

    sequence: int
    total_seats: int
    seats_declared: int
    parties: tuple[Seats, ...]


def picture(seats: Mapping[str, int], undeclared: int) -> Picture:
    """Seats won so far and seats still to declare; together they must make the 650."""
    declared = sum(seats.values())
    assert declared + undeclared == TOTAL_SEATS, f"{declared} + {undeclared} is not 650"
    return Picture(
        sequence=declared,
        total_seats=TOTAL_SEATS,
        seats_declared=declared,
        parties=tuple(Seats(party, n) for party, n in seats.items()),
    )


def majority_party(seats: Mapping[str, int], register: Register) -> str | None:
    """`majority_party` of the state of the parties built from these seats' counters."""
    totals = {f"party:{party}:seats": n for party, n in seats.items()}
    totals["total:declared"] = sum(seats.values())
    return state_of_parties(totals, register, 0, None, None).majority_party


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


def test_the_hand_worked_figures_assume_the_2024_register(register: Register) -> None:
    assert (register.total_seats, register.majority_line, register.speaker_party) == (
        650,
        326,
        "Spk",
    )


# Labour against the Conservatives around 04:43 on the 2024 night (Worsley and Eccles, then
# Cardiff South and Penarth): Labour 297, the Conservatives 55, the rest well below 55.
# Columns: seats, undeclared, party asked about, cannot be overtaken, largest party certain.
LEADER_EDGES = [
    pytest.param(
        {"Lab": 297, "Con": 55, "LD": 35, "PC": 4, "SNP": 16},
        243,
        "Lab",
        False,
        False,
        # 297 < 55 + 243 = 298: the Conservatives could still finish a seat ahead.
        id="297-against-55+243-one-short",
    ),
    pytest.param(
        {"Lab": 297, "Con": 55, "LD": 35, "PC": 4, "SNP": 17},
        242,
        "Lab",
        True,
        False,
        # 297 == 55 + 242 = 297: a tie at worst, so cannot be overtaken, but not yet certain.
        id="297-against-55+242-exactly",
    ),
    pytest.param(
        {"Lab": 297, "Con": 55, "LD": 35, "PC": 4, "SNP": 18},
        241,
        "Lab",
        True,
        True,
        # 297 > 55 + 241 = 296: no tie possible, both hold.
        id="297-against-55+241-one-over",
    ),
    pytest.param(
        {"Lab": 296, "Con": 55, "LD": 35, "PC": 4, "SNP": 18},
        242,
        "Lab",
        False,
        False,
        # Worsley and Eccles as Labour's 296th: 296 < 55 + 242 = 297.
        id="296-against-55+242",
    ),
    pytest.param(
        {"Lab": 297, "Con": 55, "LD": 35, "PC": 4, "SNP": 17},
        242,
        "Con",
        False,
        False,
        # The rival's side of the edge: 55 < 297 + 242 = 539.
        id="the-rival-at-the-edge",
    ),
]


@pytest.mark.parametrize(("seats", "undeclared", "party", "cannot", "certain"), LEADER_EDGES)
def test_a_party_on_exactly_its_rivals_seats_plus_the_seats_undeclared(
    register: Register,
    seats: dict[str, int],
    undeclared: int,
    party: str,
    cannot: bool,
    certain: bool,
) -> None:
    state = picture(seats, undeclared)
    assert cannot_be_overtaken(state, party, register) is cannot
    assert largest_party_certain(state, party, register) is certain


# Columns: seats, undeclared, party asked about, majority (seats >= 326).
MAJORITY_EDGES = [
    pytest.param({"Lab": 325, "Con": 200}, 125, "Lab", False, id="325-one-short"),
    pytest.param({"Lab": 326, "Con": 200}, 124, "Lab", True, id="326-exactly-the-line"),
    pytest.param({"Lab": 327, "Con": 200}, 123, "Lab", True, id="327-one-over"),
    pytest.param({"Lab": 326, "Con": 200}, 124, "Con", False, id="the-other-party"),
    # 325 + the Speaker's 1 would be 326, but the Speaker's seat is nobody's.
    pytest.param({"Lab": 325, "Spk": 1, "Con": 200}, 124, "Lab", False, id="325-plus-speaker"),
    pytest.param({"Lab": 325, "Spk": 1, "Con": 200}, 124, "Spk", False, id="the-speaker"),
    # A made-up state (a night has one Speaker's seat): 400 >= 326, but it is nobody's.
    pytest.param({"Spk": 400, "Lab": 200}, 50, "Spk", False, id="400-speaker-seats"),
    # 326 independents are 326 people, not a party with a majority.
    pytest.param({"Ind": 326, "Lab": 200}, 124, "Ind", False, id="326-independents"),
    # 325 each: nobody reaches the line.
    pytest.param({"Lab": 325, "Con": 325}, 0, "Lab", False, id="325-all-square"),
    pytest.param({}, 650, "Lab", False, id="nothing-declared"),
]


@pytest.mark.parametrize(("seats", "undeclared", "party", "majority"), MAJORITY_EDGES)
def test_the_majority_line_is_326_of_650(
    register: Register, seats: dict[str, int], undeclared: int, party: str, majority: bool
) -> None:
    assert has_majority(picture(seats, undeclared), party, register) is majority


# Columns: seats, the state's `majority_party` (the party on 326 or more; the Speaker's seat
# adds to nobody). The undeclared seats play no part in it.
MAJORITY_PARTY_EDGES = [
    pytest.param({"Lab": 325, "Con": 200}, None, id="325-one-short"),
    pytest.param({"Lab": 326, "Con": 200}, "Lab", id="326-exactly-the-line"),
    pytest.param({"Lab": 327, "Con": 200}, "Lab", id="327-one-over"),
    pytest.param({"Lab": 325, "Spk": 1, "Con": 200}, None, id="325-plus-speaker"),
    pytest.param({"Con": 326, "Lab": 324}, "Con", id="326-all-declared"),
    pytest.param({"Lab": 320, "Con": 320, "LD": 10}, None, id="a-tie-at-320"),
    pytest.param({"Lab": 325, "Con": 325}, None, id="a-tie-at-325"),
    pytest.param({}, None, id="nothing-declared"),
]


@pytest.mark.parametrize(("seats", "expected"), MAJORITY_PARTY_EDGES)
def test_majority_party_of_the_state_of_the_parties(
    register: Register, seats: dict[str, int], expected: str | None
) -> None:
    assert majority_party(seats, register) == expected


# Columns: seats, undeclared, party asked about, cannot be overtaken, largest party certain.
TIES = [
    # Everything declared, 320 each: neither can be overtaken (320 >= 320 + 0), neither is
    # certain to be largest (320 > 320 + 0 fails).
    pytest.param({"Lab": 320, "Con": 320, "LD": 10}, 0, "Lab", True, False, id="tie-Lab"),
    pytest.param({"Lab": 320, "Con": 320, "LD": 10}, 0, "Con", True, False, id="tie-Con"),
    # A tie with 10 to come: 300 < 300 + 10 for either.
    pytest.param({"Lab": 300, "Con": 300, "LD": 40}, 10, "Lab", False, False, id="tie-10-to-come"),
    # One seat apart, all declared: 321 > 320 + 0 for Labour; 320 < 321 + 0 for the Tories.
    pytest.param({"Lab": 321, "Con": 320, "LD": 9}, 0, "Lab", True, True, id="one-apart-Lab"),
    pytest.param({"Lab": 321, "Con": 320, "LD": 9}, 0, "Con", False, False, id="one-apart-Con"),
    # One seat apart, one to come: 321 == 320 + 1, a tie at worst.
    pytest.param({"Lab": 321, "Con": 320, "LD": 8}, 1, "Lab", True, False, id="one-apart-1-left"),
]


@pytest.mark.parametrize(("seats", "undeclared", "party", "cannot", "certain"), TIES)
def test_a_tie_at_the_top(
    register: Register,
    seats: dict[str, int],
    undeclared: int,
    party: str,
    cannot: bool,
    certain: bool,
) -> None:
    state = picture(seats, undeclared)
    assert cannot_be_overtaken(state, party, register) is cannot
    assert largest_party_certain(state, party, register) is certain


# Columns: seats, undeclared, party asked about, cannot be overtaken, largest party certain.
WHO_COUNTS = [
    # The Speaker is nobody's rival: Labour's rival has 0, so 325 > 0 + 324 (were the
    # Speaker's seat a rival's, 325 > 1 + 324 would fail).
    pytest.param({"Lab": 325, "Spk": 1}, 324, "Lab", True, True, id="speaker-is-no-rival"),
    # The Speaker's code never holds a milestone, whatever the arithmetic. No night has
    # more than one Speaker's seat, so this state is made up: 400 > 200 + 50, yet False.
    pytest.param({"Spk": 400, "Lab": 200}, 50, "Spk", False, False, id="speaker-holds-nothing"),
    # Independents are a rival (a bloc at worst): 300 == 20 + 280, a tie at worst, not
    # certain. Were they not, the rival would be the Tories: 300 > 15 + 280.
    pytest.param(
        {"Lab": 300, "Ind": 20, "Con": 15, "LD": 15, "SNP": 10, "PC": 10},
        280,
        "Lab",
        True,
        False,
        id="independents-are-a-rival",
    ),
    # ...but never the largest party: 400 > 200 + 50, yet 'Ind' is not a party.
    pytest.param({"Ind": 400, "Lab": 200}, 50, "Ind", False, False, id="independents-hold-nothing"),
]


@pytest.mark.parametrize(("seats", "undeclared", "party", "cannot", "certain"), WHO_COUNTS)
def test_the_speaker_and_independents(
    register: Register,
    seats: dict[str, int],
    undeclared: int,
    party: str,
    cannot: bool,
    certain: bool,
) -> None:
    state = picture(seats, undeclared)
    assert cannot_be_overtaken(state, party, register) is cannot
    assert largest_party_certain(state, party, register) is certain


# Columns: seats (a party on 0 listed or absent), undeclared, party asked about. No milestone
# holds for a party with no seats.
ZERO_SEATS = [
    pytest.param({}, 650, "Lab", id="before-the-first-seat"),
    pytest.param({"Spk": 1}, 649, "Lab", id="only-chorley-declared"),
    pytest.param({"Lab": 0, "Con": 1}, 649, "Lab", id="listed-on-0"),
    pytest.param({"Lab": 411, "Con": 121, "LD": 72, "Spk": 1}, 45, "Reform", id="absent"),
]


@pytest.mark.parametrize(("seats", "undeclared", "party"), ZERO_SEATS)
def test_no_seats_no_milestone(
    register: Register, seats: dict[str, int], undeclared: int, party: str
) -> None:
    state = picture(seats, undeclared)
    assert has_majority(state, party, register) is False
    assert cannot_be_overtaken(state, party, register) is False
    assert largest_party_certain(state, party, register) is False
