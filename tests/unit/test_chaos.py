"""Chaos: deterministic, every fault labelled, and the true figures always the last word."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from schemas.declaration import Declaration, DeclarationKind
from scripts.chaos import (
    EXPECTED_REJECTION,
    MUST_BE_REJECTED,
    ChaosRates,
    Outgoing,
    clean_feed,
    closest_seats,
    inject_chaos,
)
from scripts.night_builder import Night, build_night
from streams.rules.validation import Accepted, FeedPosition, Rejected, validate_message

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"
# Rates high enough that every fault happens many times in one night.
HEAVY = ChaosRates(
    duplicate=0.2,
    reorder=0.2,
    correction=0.2,
    rush=0.3,
    recount_closest=10,
    malformed=0.03,
    invalid=0.05,
)


@pytest.fixture(scope="module")
def night() -> Night:
    return build_night(DATA_DIR)


@pytest.fixture(scope="module")
def heavy(night: Night) -> list[Outgoing]:
    return inject_chaos(night, 11, HEAVY)


def _wire(feed: list[Outgoing]) -> list[tuple[str, bytes, str, dt.datetime]]:
    return [(o.key, o.value, o.label, o.at) for o in feed]


def _verdicts(feed: list[Outgoing], night: Night) -> list[Accepted | Rejected]:
    return [
        validate_message(
            o.value, FeedPosition("declarations", 0, n, o.key.encode()), night.register
        )
        for n, o in enumerate(feed)
    ]


def _declarations(feed: list[Outgoing], night: Night) -> list[tuple[Outgoing, Declaration]]:
    return [
        (item, verdict.message)
        for item, verdict in zip(feed, _verdicts(feed, night), strict=True)
        if isinstance(verdict, Accepted) and isinstance(verdict.message, Declaration)
    ]


def test_the_same_seed_gives_byte_identical_chaos(night: Night) -> None:
    first, again = inject_chaos(night, 7), inject_chaos(build_night(DATA_DIR), 7)
    assert _wire(first) == _wire(again)
    assert _wire(first) != _wire(inject_chaos(night, 8))


def test_one_rate_never_moves_another_fault(night: Night) -> None:
    def corrections(rates: ChaosRates) -> list[bytes]:
        return sorted(o.value for o in inject_chaos(night, 7, rates) if o.label == "wrong_count")

    assert corrections(ChaosRates()) == corrections(ChaosRates(duplicate=0.5, reorder=0.5))


def test_no_chaos_is_the_clean_night(night: Night) -> None:
    assert inject_chaos(night, 7, ChaosRates.none()) == clean_feed(night)
    assert len(clean_feed(night)) == 651


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError, match="duplicate rate"):
        ChaosRates(duplicate=1.5)
    with pytest.raises(ValueError, match="recount_closest"):
        ChaosRates(recount_closest=-1)


def test_validation_rejects_exactly_the_labelled_messages_for_the_labelled_reason(
    night: Night, heavy: list[Outgoing]
) -> None:
    labels = Counter(o.label for o in heavy)
    assert {label for label in labels if ":" in label} == MUST_BE_REJECTED  # every variant sent
    for item, verdict in zip(heavy, _verdicts(heavy, night), strict=True):
        if item.must_be_rejected:
            assert isinstance(verdict, Rejected), item.label
            assert verdict.rejection.reason == EXPECTED_REJECTION[item.label], item.label
        else:
            assert isinstance(verdict, Accepted), (item.label, verdict)


def test_the_true_figures_are_each_seats_highest_revision(
    night: Night, heavy: list[Outgoing]
) -> None:
    # A correct processor: per seat, the highest revision wins whatever order it arrives in.
    final: dict[str, Declaration] = {}
    content: dict[tuple[str, int], bytes] = {}
    for item, declaration in _declarations(heavy, night):
        seat_revision = (declaration.constituency_id, declaration.revision)
        # Never two different messages under one revision: that would be a conflict.
        assert content.setdefault(seat_revision, item.value) == item.value, seat_revision
        current = final.get(declaration.constituency_id)
        if current is None or declaration.revision > current.revision:
            final[declaration.constituency_id] = declaration
    clean = {d.constituency_id: d for d in night.declarations}
    assert final.keys() == clean.keys()
    for ons_id, declaration in final.items():
        assert declaration.kind in (DeclarationKind.RESULT, DeclarationKind.CORRECTION)
        ignore = {"kind", "revision"}
        assert declaration.model_dump(exclude=ignore) == clean[ons_id].model_dump(exclude=ignore)
    # seat_declared marks exactly those final messages, once per seat.
    declared = [o for o in heavy if o.seat_declared]
    assert len(declared) == len({o.key for o in declared}) == 650


def _by_seat(feed: list[Outgoing], night: Night) -> dict[str, list[tuple[Outgoing, Declaration]]]:
    seats: dict[str, list[tuple[Outgoing, Declaration]]] = defaultdict(list)
    for item, declaration in _declarations(feed, night):
        if item.label != "duplicate":
            seats[declaration.constituency_id].append((item, declaration))
    return seats


def test_a_rush_names_the_winner_only_and_the_result_follows_at_revision_2(
    night: Night, heavy: list[Outgoing]
) -> None:
    clean = {d.constituency_id: d for d in night.declarations}
    rushes = 0
    for ons_id, sequence in _by_seat(heavy, night).items():
        labels = [item.label for item, _ in sorted(sequence, key=lambda s: s[1].revision)]
        if labels[0] != "rush":
            continue
        rushes += 1
        (_, rush), (_, after) = sorted(sequence, key=lambda s: s[1].revision)[:2]
        assert rush.kind is DeclarationKind.RUSH and rush.revision == 1
        assert all(c.votes is None for c in rush.candidates) and rush.valid_votes is None
        winner = clean[ons_id].winner
        assert winner is not None and rush.winner == winner.model_copy(update={"votes": None})
        assert after.revision == 2 and after.has_full_figures
    assert rushes > 100


def test_a_late_correction_replaces_a_consistent_wrong_count(
    night: Night, heavy: list[Outgoing]
) -> None:
    clean = {d.constituency_id: d for d in night.declarations}
    corrected = flipped = 0
    for ons_id, sequence in _by_seat(heavy, night).items():
        by_label = {item.label: (item, d) for item, d in sequence}
        if "wrong_count" not in by_label:
            continue
        corrected += 1
        (wrong_item, wrong), (true_item, true) = by_label["wrong_count"], by_label["correction"]
        assert wrong.kind is DeclarationKind.RESULT  # it validated, so its figures add up
        assert true.kind is DeclarationKind.CORRECTION and true.revision == wrong.revision + 1
        assert [c.votes for c in wrong.candidates] != [c.votes for c in true.candidates]
        assert true.candidates == clean[ons_id].candidates
        assert wrong.valid_votes == true.valid_votes
        assert true_item.at > wrong_item.at or true_item.reordered or wrong_item.reordered
        if wrong.winner and true.winner and wrong.winner.person_id != true.winner.person_id:
            flipped += 1
    assert corrected > 80 and 0 < flipped < corrected


def test_recount_notices_come_before_the_closest_seats_results(
    night: Night, heavy: list[Outgoing]
) -> None:
    closest = closest_seats(night.declarations, 10)
    names = {night.register.constituencies[o].name for o in closest[:3]}
    assert names == {"Hendon", "Poole", "Basildon and Billericay"}  # majorities 15, 18, 20
    seats = _by_seat(heavy, night)
    noticed = {
        ons_id for ons_id, s in seats.items() if any(d.kind.value == "recount" for _, d in s)
    }
    assert noticed == set(closest)
    for ons_id in closest:
        _, notice = min(seats[ons_id], key=lambda s: s[1].revision)
        assert notice.kind is DeclarationKind.RECOUNT and notice.revision == 1
        assert notice.winner is None and all(c.votes is None for c in notice.candidates)
        final = max(seats[ons_id], key=lambda s: s[1].revision)[1]
        assert final.revision >= 2 and final.has_full_figures
        assert notice.declared_at < final.declared_at


def test_duplicates_are_the_same_bytes_again_later(heavy: list[Outgoing]) -> None:
    duplicates = [o for o in heavy if o.label == "duplicate"]
    assert len(duplicates) > 100
    first_sent: dict[bytes, Outgoing] = {}
    for item in heavy:
        if item.label != "duplicate":
            first_sent.setdefault(item.value, item)
    for duplicate in duplicates:
        original = first_sent[duplicate.value]
        assert original.key == duplicate.key and not original.must_be_rejected
        # A held-back original may be overtaken by its own resend; otherwise it goes first.
        assert duplicate.at >= original.at or original.reordered


def test_some_messages_arrive_after_later_declarations_but_send_times_never_go_back(
    night: Night, heavy: list[Outgoing]
) -> None:
    assert heavy[0].label == "exit_poll"
    assert [o.at for o in heavy] == sorted(o.at for o in heavy)
    assert sum(o.reordered for o in heavy) > 100
    declared = [d.declared_at for _, d in _declarations(heavy, night)]
    assert any(later < earlier for earlier, later in itertools.pairwise(declared))


def test_labels_are_what_the_bytes_are(night: Night, heavy: list[Outgoing]) -> None:
    kinds = {"exit_poll", "result", "rush", "recount", "correction", "malformed", "invalid"}
    assert {o.kind for o in heavy} == kinds
    for item in heavy:
        if item.kind in {"result", "rush", "recount", "correction"}:
            assert orjson.loads(item.value)["kind"] == item.kind, item.label
