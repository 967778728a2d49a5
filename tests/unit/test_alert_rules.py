"""The alert detectors on the real 2024 night, fed in declaration order, and on corrections."""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.declaration import Declaration, DeclarationKind
from schemas.results import StateOfParties
from streams.rules.alerts import (
    AlertPolicy,
    AppliedChange,
    detect_change,
    detect_exit_poll,
    fact_id,
)
from streams.rules.alerts.base import in_order
from streams.rules.reference import Register, load_register
from streams.rules.watchlist import WatchCategory, Watchlist, load_watchlist
from streams.settings import Settings
from tests.unit.alert_fixtures import (
    BST,
    DATA_DIR,
    NightTally,
    exit_poll,
    night_declarations,
    revised,
)

ELECTION = "parl.2024-07-04"
SOUTH_WEST_NORFOLK = "E14001497"
TRUSS, JERMY, MCKENZIE = 188, 20757, 113660


@dataclass(frozen=True)
class Night:
    declarations: list[Declaration]
    changes: list[AppliedChange]
    alerts: list[Alert]
    tally: NightTally


@dataclass(frozen=True)
class Counted:
    """A seat as the candidate file has it, read here without the fixtures' help."""

    winner: int
    winner_name: str
    winner_party: str
    majority: int


@pytest.fixture(scope="module")
def register() -> Register:
    return load_register(DATA_DIR)


@pytest.fixture(scope="module")
def watchlist() -> Watchlist:
    return load_watchlist(DATA_DIR / "watchlist.csv")


@pytest.fixture(scope="module")
def policy() -> AlertPolicy:
    return AlertPolicy()


def run_night(
    register: Register, watchlist: Watchlist, policy: AlertPolicy, declarations: list[Declaration]
) -> Night:
    tally = NightTally(register)
    changes: list[AppliedChange] = []
    alerts = detect_exit_poll(exit_poll(DATA_DIR, register), register, policy)
    for declaration in declarations:
        change = tally.apply(declaration)
        changes.append(change)
        alerts += detect_change(change, register, watchlist, policy)
    return Night(declarations, changes, alerts, tally)


@pytest.fixture(scope="module")
def night(register: Register, watchlist: Watchlist, policy: AlertPolicy) -> Night:
    return run_night(register, watchlist, policy, night_declarations(DATA_DIR, register))


@pytest.fixture(scope="module")
def counted() -> dict[str, Counted]:
    by_seat: dict[str, list[dict[str, str]]] = {}
    with (DATA_DIR / "HoC-GE2024-results-by-candidate.csv").open(encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            by_seat.setdefault(row["ONS ID"], []).append(row)
    seats = {}
    for ons_id, rows in by_seat.items():
        first, second = sorted(rows, key=lambda r: -int(r["Votes"]))[:2]
        seats[ons_id] = Counted(
            winner=int(first["DC Person ID"]),
            winner_name=f"{first['Candidate first name']} {first['Candidate surname']}",
            winner_party=first["Party abbreviation"],
            majority=int(first["Votes"]) - int(second["Votes"]),
        )
    return seats


def of_type(alerts: list[Alert], alert_type: AlertType) -> list[Alert]:
    return [a for a in alerts if a.type is alert_type]


def defeated(
    watchlist: Watchlist, counted: dict[str, Counted], category: WatchCategory
) -> set[int]:
    return {
        p.person_id
        for p in watchlist.in_category(category)
        if counted[p.constituency_id].winner != p.person_id
    }


# --- the night -------------------------------------------------------------------------------


def test_the_former_prime_minister_loses_south_west_norfolk(
    night: Night, counted: dict[str, Counted]
) -> None:
    [alert] = of_type(night.alerts, AlertType.FORMER_PRIME_MINISTER_DEFEATED)
    assert alert.person_id == TRUSS
    assert alert.constituency_id == SOUTH_WEST_NORFOLK
    assert alert.priority is AlertPriority.FLASH
    assert alert.figures["winner"] == "Terry Jermy"
    assert alert.figures["winner_person_id"] == JERMY
    assert alert.figures["winner_party"] == "Lab"
    assert alert.figures["outcome"] == "lost"
    assert alert.figures["majority"] == counted[SOUTH_WEST_NORFOLK].majority == 630
    assert alert.figures["votes"] == 11217
    assert alert.occurred_at == dt.datetime(2024, 7, 5, 7, 0, tzinfo=BST)
    for fact in ("Liz Truss", "South West Norfolk", "Terry Jermy", "Labour", "630"):
        assert fact in alert.headline
    assert "07:00 BST" in alert.body and "second with 11,217 votes, 630 behind" in alert.body
    assert alert.triggered_by is not None
    assert alert.triggered_by.constituency_id == SOUTH_WEST_NORFOLK
    assert alert.triggered_by.revision == 1
    assert alert.triggered_by.ballot_id == "parl.south-west-norfolk.2024-07-04"


def test_every_defeated_cabinet_minister_and_attending_minister_is_told_apart(
    night: Night, watchlist: Watchlist, counted: dict[str, Counted]
) -> None:
    cabinet = of_type(night.alerts, AlertType.CABINET_MINISTER_DEFEATED)
    attending = of_type(night.alerts, AlertType.ATTENDING_CABINET_MINISTER_DEFEATED)
    assert {a.person_id for a in cabinet} == defeated(watchlist, counted, WatchCategory.CABINET)
    assert {a.person_id for a in attending} == defeated(
        watchlist, counted, WatchCategory.ATTENDS_CABINET
    )
    names = {str(a.headline) for a in cabinet}
    for minister in ("Grant Shapps", "Penny Mordaunt", "Alex Chalk", "Gillian Keegan"):
        assert any(minister in headline for headline in names), minister
    assert any("Johnny Mercer" in a.headline for a in attending)
    assert not any("Johnny Mercer" in a.headline for a in cabinet)
    assert {a.priority for a in cabinet} == {AlertPriority.HIGH}
    assert {a.priority for a in attending} == {AlertPriority.NORMAL}
    assert {a.figures["category"] for a in cabinet} == {"cabinet"}
    assert {a.figures["category"] for a in attending} == {"attends_cabinet"}
    for alert in cabinet + attending:
        seat = counted[str(alert.constituency_id)]
        assert alert.figures["winner_person_id"] == seat.winner != alert.person_id
        assert alert.figures["majority"] == seat.majority


def test_labour_win_the_majority_with_the_326th_seat_and_its_time(night: Night) -> None:
    [alert] = of_type(night.alerts, AlertType.MAJORITY_WON)
    labour_seats, delivering = 0, None
    for change in night.changes:
        labour_seats += change.result.winning_party == "Lab"
        if labour_seats == 326:
            delivering = change.result
            break
    assert delivering is not None
    assert alert.party == "Lab"
    assert alert.priority is AlertPriority.FLASH
    assert alert.constituency_id == delivering.constituency_id
    assert alert.constituency_name == delivering.constituency_name
    assert alert.occurred_at == delivering.declared_at
    assert alert.figures["seats"] == 326
    assert alert.figures["majority_line"] == 326
    assert alert.figures["delivered_by"] == delivering.constituency_id
    assert delivering.constituency_name in alert.headline
    assert "Speaker" in alert.body and "326 of 650" in alert.body


def test_the_earlier_moments_fire_once_each_and_not_after_the_majority(night: Night) -> None:
    [majority] = of_type(night.alerts, AlertType.MAJORITY_WON)
    [certain] = of_type(night.alerts, AlertType.LARGEST_PARTY_CERTAIN)
    # One fact, one push: "cannot be overtaken" is only a flag in the state of the parties,
    # raised one declaration before the largest party is certain (297 = 55 + 241 on 2024's
    # night), and never an alert of its own.
    assert not of_type(night.alerts, AlertType.CANNOT_BE_OVERTAKEN)

    def unbeatable(state: StateOfParties) -> bool:
        seats = {t.party: t.seats for t in state.parties}
        rival = max((n for party, n in seats.items() if party not in ("Lab", "Spk")), default=0)
        return seats.get("Lab", 0) >= rival + state.total_seats - state.seats_declared

    first_flag = next(c for c in night.changes if unbeatable(c.state_after)).result
    assert certain.party == "Lab"
    assert first_flag.declared_at <= certain.occurred_at <= majority.occurred_at
    # At the moment it fired, the leader is ahead of its rival plus every undeclared seat.
    assert int(certain.figures["seats"] or 0) > int(
        certain.figures["nearest_rival_seats"] or 0
    ) + int(certain.figures["seats_to_declare"] or 0)


@pytest.mark.parametrize(
    ("seats", "flag"),
    [
        # Worsley and Eccles: Lab 297 = Con 55 + 241 still to declare (409 declared).
        ({"Lab": 297, "Con": 55, "LD": 50, "SNP": 7}, "Lab"),
        # One seat earlier: 296 < 55 + 242.
        ({"Lab": 296, "Con": 55, "LD": 50, "SNP": 7}, None),
        # 350 still to declare: anyone could pass 300.
        ({"Lab": 300}, None),
        # Every seat declared, two parties level: neither can be passed (a tie at worst).
        ({"Lab": 320, "Con": 320, "Spk": 1, "LD": 9}, "Con"),
    ],
)
def test_the_state_of_the_parties_flags_the_party_that_cannot_be_overtaken(
    register: Register, seats: dict[str, int], flag: str | None
) -> None:
    from streams.rules.tally import state_of_parties

    totals = {f"party:{party}:seats": n for party, n in seats.items()}
    totals["total:declared"] = sum(seats.values())
    assert state_of_parties(totals, register, 1, None, None).cannot_be_overtaken == flag


def test_the_prime_minister_and_every_party_leader_get_their_result(
    night: Night, watchlist: Watchlist, counted: dict[str, Counted]
) -> None:
    [prime_minister] = of_type(night.alerts, AlertType.PRIME_MINISTER_RESULT)
    assert prime_minister.person_id == 5371
    assert prime_minister.figures["outcome"] == "won"
    assert "Rishi Sunak" in prime_minister.headline
    leaders = {a.person_id: a for a in of_type(night.alerts, AlertType.PARTY_LEADER_RESULT)}
    expected = watchlist.in_category(WatchCategory.PARTY_LEADER)
    assert set(leaders) == {p.person_id for p in expected}
    for person in expected:
        won = counted[person.constituency_id].winner == person.person_id
        assert leaders[person.person_id].figures["outcome"] == ("won" if won else "lost")
    assert leaders[4754].figures["outcome"] == "lost"  # George Galloway, Rochdale
    assert leaders[5077].figures["outcome"] == "won"  # Keir Starmer
    former = {a.person_id for a in of_type(night.alerts, AlertType.FORMER_PARTY_LEADER_RESULT)}
    assert former == {p.person_id for p in watchlist.in_category(WatchCategory.FORMER_PARTY_LEADER)}


def test_shadow_cabinet_defeats(
    night: Night, watchlist: Watchlist, counted: dict[str, Counted]
) -> None:
    shadow = of_type(night.alerts, AlertType.SHADOW_CABINET_DEFEATED)
    assert {a.person_id for a in shadow} == defeated(
        watchlist, counted, WatchCategory.SHADOW_CABINET
    )
    assert {5545, 4281} <= {a.person_id for a in shadow}  # Ashworth, Debbonaire


def test_every_gain_and_the_shock_gains(
    night: Night, register: Register, counted: dict[str, Counted]
) -> None:
    gains = {
        seat.ons_id
        for seat in register
        if counted[seat.ons_id].winner_party != seat.notional_2019_winner
    }
    seat_gains = of_type(night.alerts, AlertType.SEAT_GAIN)
    assert {a.constituency_id for a in seat_gains} == gains
    assert {a.priority for a in seat_gains} == {AlertPriority.LOW}
    shocks = {a.constituency_id for a in of_type(night.alerts, AlertType.SHOCK_GAIN)}
    assert shocks == {
        ons_id
        for ons_id in gains
        if (register.constituencies[ons_id].notional_2019_majority_share or 0)
        >= AlertPolicy().shock_majority_share
    }
    assert SOUTH_WEST_NORFOLK in shocks


def test_narrow_margins(night: Night, counted: dict[str, Counted]) -> None:
    narrow = {a.constituency_id: a for a in of_type(night.alerts, AlertType.NARROW_MARGIN)}
    assert set(narrow) == {ons_id for ons_id, seat in counted.items() if seat.majority < 100}
    hendon = next(a for a in narrow.values() if a.constituency_name == "Hendon")
    assert hendon.figures["majority"] == 15
    assert "15 votes" in hendon.headline


def test_first_and_last_declarations_and_the_exit_poll(night: Night) -> None:
    [first] = of_type(night.alerts, AlertType.FIRST_DECLARATION)
    [last] = of_type(night.alerts, AlertType.LAST_DECLARATION)
    [poll] = of_type(night.alerts, AlertType.EXIT_POLL)
    assert first.constituency_name == "Houghton and Sunderland South"
    assert first.occurred_at == dt.datetime(2024, 7, 4, 23, 17, tzinfo=BST)
    assert last.constituency_name == "Inverness, Skye and West Ross-shire"
    assert last.figures["seats_declared"] == 650
    assert poll.figures["seats_Lab"] == 410
    assert poll.figures["projected_majority"] == 170
    assert poll.occurred_at == dt.datetime(2024, 7, 4, 22, 0, tzinfo=BST)
    assert {first.priority, last.priority, poll.priority} == {AlertPriority.HIGH}


def test_ids_are_unique_and_the_same_night_gives_the_same_alerts(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    assert len({a.alert_id for a in night.alerts}) == len(night.alerts)
    again = run_night(register, watchlist, policy, night.declarations)
    assert [a.model_dump() for a in again.alerts] == [a.model_dump() for a in night.alerts]


def test_each_changes_alerts_come_sorted_loudest_first(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    for change in night.changes:
        alerts = detect_change(change, register, watchlist, policy)
        assert alerts == in_order(alerts)
        assert [a.priority.rank for a in alerts] == sorted(a.priority.rank for a in alerts)


def test_nothing_copies_the_news_reports(night: Night) -> None:
    seeds = Path("/work/shared/seeds")
    if not seeds.is_dir():
        pytest.skip("news reports not here")
    reports = " ".join(p.read_text(encoding="utf-8") for p in seeds.glob("*.txt"))
    for alert in night.alerts:
        for sentence in alert.body.split(". "):
            assert len(sentence) < 40 or sentence not in reports


# --- corrections, recounts, rushes -----------------------------------------------------------


def seat_declaration(night: Night, ons_id: str) -> Declaration:
    return next(d for d in night.declarations if d.constituency_id == ons_id)


def by_replaced(alerts: list[Alert]) -> dict[AlertType, Alert]:
    """Amendments and retractions by the type of the alert they replace."""
    return {a.replaces_type: a for a in alerts if a.replaces_type is not None}


def seat_alert_ids(night: Night, ons_id: str) -> dict[AlertType, str]:
    return {a.type: a.alert_id for a in night.alerts if a.constituency_id == ons_id}


def test_a_correction_that_hands_truss_the_seat_retracts_the_gain_and_her_defeat(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    earlier = seat_alert_ids(night, SOUTH_WEST_NORFOLK)
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    # The two top candidates' votes transposed: Truss 11,847, Jermy 11,217.
    correction = revised(original, 2, votes={TRUSS: 11847, JERMY: 11217})
    change = night.tally.clone().apply(correction)
    alerts = detect_change(change, register, watchlist, policy)

    assert {a.type for a in alerts} == {AlertType.RETRACTED}
    retracted = by_replaced(alerts)
    assert set(retracted) == {
        AlertType.SEAT_GAIN,
        AlertType.SHOCK_GAIN,
        AlertType.FORMER_PRIME_MINISTER_DEFEATED,
    }
    for alert_type, alert in retracted.items():
        assert alert.supersedes[0] == earlier[alert_type]
        assert alert.triggered_by is not None and alert.triggered_by.revision == 2
        assert "Liz Truss (Conservative) is now the winner" in alert.body
    # A withdrawal reaches everyone the flash did.
    assert retracted[AlertType.FORMER_PRIME_MINISTER_DEFEATED].priority is AlertPriority.FLASH
    assert retracted[AlertType.SEAT_GAIN].priority is AlertPriority.NORMAL
    assert detect_change(change, register, watchlist, policy) == alerts  # re-detection


def test_a_correction_that_changes_the_winner_amends_what_still_holds(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    earlier = seat_alert_ids(night, SOUTH_WEST_NORFOLK)
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    # Reform's Toby McKenzie top instead: still a gain, still a shock, Truss still out.
    correction = revised(original, 2, votes={MCKENZIE: 12100})
    alerts = detect_change(night.tally.clone().apply(correction), register, watchlist, policy)

    assert {a.type for a in alerts} == {AlertType.AMENDED}
    amended = by_replaced(alerts)
    assert set(amended) == {
        AlertType.SEAT_GAIN,
        AlertType.SHOCK_GAIN,
        AlertType.FORMER_PRIME_MINISTER_DEFEATED,
    }
    for alert_type, alert in amended.items():
        assert alert.supersedes[0] == earlier[alert_type]
        assert alert.alert_id not in earlier.values()
        assert alert.figures["winner_person_id"] == MCKENZIE
    truss = amended[AlertType.FORMER_PRIME_MINISTER_DEFEATED]
    assert truss.priority is AlertPriority.FLASH  # someone else won: as loud as before
    assert "Reform UK" in truss.headline and truss.figures["majority"] == 253
    assert amended[AlertType.SEAT_GAIN].priority is AlertPriority.LOW


def test_a_flip_and_a_flip_back_reinstate_under_new_ids(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    earlier = seat_alert_ids(night, SOUTH_WEST_NORFOLK)
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    tally = night.tally.clone()
    flipped = detect_change(
        tally.apply(revised(original, 2, votes={TRUSS: 11847, JERMY: 11217})),
        register,
        watchlist,
        policy,
    )
    back = detect_change(
        tally.apply(revised(original, 3, minutes_later=90)), register, watchlist, policy
    )
    assert {a.type for a in back} == {
        AlertType.SEAT_GAIN,
        AlertType.SHOCK_GAIN,
        AlertType.FORMER_PRIME_MINISTER_DEFEATED,
    }
    for alert in back:
        # The outbox never sends an id twice, so a fact told again needs a new one.
        assert alert.alert_id != earlier[alert.type]
        assert alert.supersedes[0] == earlier[alert.type]
        # The withdrawal shown since revision 2 is taken down by the fact told again.
        withdrawal = next(a for a in flipped if a.replaces_type is alert.type)
        assert withdrawal.alert_id in alert.supersedes
    every_id = [a.alert_id for a in night.alerts + flipped + back]
    assert len(every_id) == len(set(every_id))


def test_a_correction_of_figures_only_amends_quietly(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    correction = revised(original, 2, votes={JERMY: 11857})  # ten votes found
    alerts = detect_change(night.tally.clone().apply(correction), register, watchlist, policy)
    amended = by_replaced(alerts)
    assert {a.type for a in alerts} == {AlertType.AMENDED}
    truss = amended[AlertType.FORMER_PRIME_MINISTER_DEFEATED]
    assert truss.priority is AlertPriority.NORMAL
    assert truss.figures["majority"] == 640
    assert "majority 630 → 640" in truss.body
    assert amended[AlertType.SEAT_GAIN].priority is AlertPriority.LOW


def test_a_second_amendment_supersedes_the_first(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    tally = night.tally.clone()
    first = by_replaced(
        detect_change(
            tally.apply(revised(original, 2, votes={JERMY: 11857})), register, watchlist, policy
        )
    )
    second = by_replaced(
        detect_change(
            tally.apply(revised(original, 3, votes={JERMY: 11867}, minutes_later=90)),
            register,
            watchlist,
            policy,
        )
    )
    for alert_type, alert in second.items():
        assert alert.figures["majority"] == 650
        assert alert.supersedes[0] == first[alert_type].supersedes[0]
        assert first[alert_type].alert_id in alert.supersedes


def test_a_recount_notice_then_a_different_winner(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    hendon = next(d for d in night.declarations if d.constituency_name == "Hendon")
    earlier = seat_alert_ids(night, hendon.constituency_id)
    ranked = sorted(hendon.candidates, key=lambda c: -(c.votes or 0))
    runner_up, winner = ranked[1], ranked[0]
    tally = night.tally.clone()

    notice = detect_change(
        tally.apply(revised(hendon, 2, kind=DeclarationKind.RECOUNT)),
        register,
        watchlist,
        policy,
    )
    [recount] = notice
    assert recount.type is AlertType.RECOUNT and recount.priority is AlertPriority.NORMAL
    assert recount.constituency_name == "Hendon" and "Recount" in recount.headline

    after = detect_change(
        tally.apply(
            revised(
                hendon,
                3,
                votes={
                    runner_up.person_id: winner.votes or 0,
                    winner.person_id: runner_up.votes or 0,
                },
                minutes_later=120,
            )
        ),
        register,
        watchlist,
        policy,
    )
    by_type = {(a.type, a.replaces_type): a for a in after}
    # Conservative hold by 15 now: the gain and shock go, the narrow margin stays amended.
    retracted = by_type[(AlertType.RETRACTED, AlertType.SEAT_GAIN)]
    assert retracted.supersedes[0] == earlier[AlertType.SEAT_GAIN]
    amended = by_type[(AlertType.AMENDED, AlertType.NARROW_MARGIN)]
    assert amended.supersedes[0] == earlier[AlertType.NARROW_MARGIN]
    assert amended.figures["winning_party"] == "Con" and amended.figures["majority"] == 15


def test_a_rush_then_the_figures(
    register: Register, watchlist: Watchlist, policy: AlertPolicy, night: Night
) -> None:
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    tally = NightTally(register)
    rush = detect_change(
        tally.apply(revised(original, 1, kind=DeclarationKind.RUSH, minutes_later=-5)),
        register,
        watchlist,
        policy,
    )
    [truss] = of_type(rush, AlertType.FORMER_PRIME_MINISTER_DEFEATED)
    assert truss.figures["majority"] is None and "figures to follow" in truss.body
    assert truss.alert_id == fact_id(
        ELECTION, AlertType.FORMER_PRIME_MINISTER_DEFEATED, SOUTH_WEST_NORFOLK, TRUSS
    )
    figures = detect_change(
        tally.apply(revised(original, 2, kind=DeclarationKind.RESULT, minutes_later=0)),
        register,
        watchlist,
        policy,
    )
    amended = by_replaced(of_type(figures, AlertType.AMENDED))
    assert amended[AlertType.FORMER_PRIME_MINISTER_DEFEATED].figures["majority"] == 630
    assert amended[AlertType.FORMER_PRIME_MINISTER_DEFEATED].supersedes[0] == truss.alert_id
    assert amended[AlertType.FORMER_PRIME_MINISTER_DEFEATED].priority is AlertPriority.NORMAL


def test_a_correction_that_undoes_the_majority_withdraws_it(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    [majority] = of_type(night.alerts, AlertType.MAJORITY_WON)
    upto = next(
        i
        for i, c in enumerate(night.changes)
        if c.result.constituency_id == majority.constituency_id
    )
    tally = NightTally(register)
    for declaration in night.declarations[: upto + 1]:
        tally.apply(declaration)
    delivering = night.declarations[upto]
    ranked = sorted(delivering.candidates, key=lambda c: -(c.votes or 0))
    correction = revised(delivering, 2, votes={ranked[1].person_id: (ranked[0].votes or 0) + 1})
    alerts = detect_change(tally.apply(correction), register, watchlist, policy)
    [withdrawn] = [a for a in alerts if a.replaces_type is AlertType.MAJORITY_WON]
    assert withdrawn.type is AlertType.RETRACTED
    assert withdrawn.supersedes == [majority.alert_id]
    assert withdrawn.priority is AlertPriority.FLASH


def test_milestones_are_tested_only_for_parties_that_could_hold_them(
    night: Night, register: Register
) -> None:
    """The shortcut in milestone_alerts skips no party for which a milestone holds: every
    state of the night, and states with seats shuffled between parties and the Speaker."""
    from streams.rules.alerts.national import (
        _could_hold,
        cannot_be_overtaken,
        has_majority,
        largest_party_certain,
    )
    from streams.rules.tally import state_of_parties

    milestones = (has_majority, largest_party_certain, cannot_be_overtaken)

    states = [c.state_after for c in night.changes]
    rng = random.Random(7)
    for _ in range(2000):
        totals = {
            f"party:{party}:seats": rng.choice([0, 1, 5, 100, 240, 325, 326, 327, 400])
            for party in ("Lab", "Con", "LD", "SNP", "Spk", "Ind", "RUK")
        }
        totals["total:declared"] = rng.randint(0, 650)
        states.append(state_of_parties(totals, register, 0, None, None))
    for state in states:
        holding = {
            t.party
            for t in state.parties
            if any(holds(state, t.party, register) for holds in milestones)
        }
        assert holding <= _could_hold(state, register), state


# --- settings --------------------------------------------------------------------------------


def test_priorities_and_thresholds_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTION_ALERT_PRIORITIES", '{"seat_gain": "normal", "recount": "high"}')
    monkeypatch.setenv("ELECTION_ALERT_SHOCK_MAJORITY_SHARE", "0.5")
    policy = Settings().alert_policy()
    assert policy.priority(AlertType.SEAT_GAIN) is AlertPriority.NORMAL
    assert policy.priority(AlertType.RECOUNT) is AlertPriority.HIGH
    assert policy.priority(AlertType.MAJORITY_WON) is AlertPriority.FLASH
    assert policy.shock_majority_share == 0.5
    assert policy.narrow_margin_votes == 100


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"seat_gains": "low"}, "unknown alert type 'seat_gains'"),
        ({"seat_gain": "urgent"}, "'urgent'"),
    ],
)
def test_a_bad_priority_setting_is_refused(overrides: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Settings(alert_priorities=overrides).alert_policy()


def test_a_higher_shock_threshold_keeps_the_biggest_upsets(
    night: Night, register: Register, watchlist: Watchlist
) -> None:
    strict = AlertPolicy(shock_majority_share=0.5, narrow_margin_votes=20)
    alerts = [a for c in night.changes for a in detect_change(c, register, watchlist, strict)]
    shocks = {a.constituency_name for a in of_type(alerts, AlertType.SHOCK_GAIN)}
    assert "South West Norfolk" in shocks and "Clacton" in shocks
    assert all(
        (register.constituencies[str(a.constituency_id)].notional_2019_majority_share or 0) >= 0.5
        for a in of_type(alerts, AlertType.SHOCK_GAIN)
    )
    assert {a.constituency_name for a in of_type(alerts, AlertType.NARROW_MARGIN)} == {
        "Hendon",
        "Poole",
    }


# --- any order of the night ------------------------------------------------------------------


# Each example tallies the whole night in a new order (~2 s in all): the full suite runs it.
@pytest.mark.slow
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=st.randoms(use_true_random=False))
def test_in_any_order_each_milestone_fires_once_at_the_right_seat(
    order: random.Random,
    register: Register,
    watchlist: Watchlist,
    policy: AlertPolicy,
    night: Night,
) -> None:
    declarations = list(night.declarations)
    order.shuffle(declarations)
    tally = NightTally(register)
    alerts: list[Alert] = []
    labour, delivering = 0, None
    for declaration in declarations:
        change = tally.apply(declaration)
        labour += change.result.winning_party == "Lab"
        if labour == 326 and delivering is None:
            delivering = change.result.constituency_id
        alerts += detect_change(change, register, watchlist, policy)
    counts = Counter(a.type for a in alerts)
    for once in (
        AlertType.MAJORITY_WON,
        AlertType.LARGEST_PARTY_CERTAIN,
        AlertType.FIRST_DECLARATION,
        AlertType.LAST_DECLARATION,
    ):
        assert counts[once] == 1, once
    [majority] = of_type(alerts, AlertType.MAJORITY_WON)
    assert majority.constituency_id == delivering
    assert len({a.alert_id for a in alerts}) == len(alerts)


def test_alerts_survive_the_wire(
    night: Night, register: Register, watchlist: Watchlist, policy: AlertPolicy
) -> None:
    original = seat_declaration(night, SOUTH_WEST_NORFOLK)
    correction = revised(original, 2, votes={TRUSS: 11847, JERMY: 11217})
    retractions = detect_change(night.tally.clone().apply(correction), register, watchlist, policy)
    for alert in night.alerts + retractions:
        assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_the_worker_s_tally_rules_raise_the_same_alerts_as_this_independent_tally(
    night: Night, policy: AlertPolicy
) -> None:
    # scripts/alerts_of_the_night feeds the detectors from streams.rules.tally (what the worker
    # stores); the fixture here counts seats its own way: two routes, one list of alerts.
    from scripts.alerts_of_the_night import alerts_of_the_night

    through_worker_rules = alerts_of_the_night(DATA_DIR, DATA_DIR / "watchlist.csv", policy)
    # Seats declared in the same minute may come in another order; the alerts may not differ.
    assert sorted((a.alert_id, a.headline) for a in through_worker_rules) == sorted(
        (a.alert_id, a.headline) for a in night.alerts
    )
