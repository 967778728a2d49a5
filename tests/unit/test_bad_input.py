"""Fuzz of the validator: 10,000 bad messages, each rejected for its reason, none raising."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.rejection import Rejection
from streams.rules.validation import (
    KEPT_PREFIX_BYTES,
    MAX_DETAIL_CHARS,
    MAX_KEY_BYTES,
    FeedPosition,
    Rejected,
    validate_message,
)
from tests.unit.bad_input import GENERATORS, LIMIT, HypothesisSource, bad_message, corpus, night

FUZZ_EXAMPLES = 10_000
FIGURES = Path(__file__).resolve().parents[2] / "artifacts" / "fuzz-validator.json"
# When the messages are judged: after the night, so that no true time of it is in the future.
NOW = dt.datetime(2024, 7, 8, 12, 0, tzinfo=dt.UTC)
# A dead letter of a message within the limit holds it whole, base64 (4/3 of its size),
# plus a bounded key and reason; an oversized one holds a prefix only.
DEAD_LETTER_MAX = LIMIT * 4 // 3 + 8 * 1024
OVERSIZED_DEAD_LETTER_MAX = KEPT_PREFIX_BYTES * 4 // 3 + 8 * 1024


# ~30 s of Hypothesis drawing 10,000 examples: scripts/test.sh runs it, make test-unit does not.
@pytest.mark.slow
def test_ten_thousand_bad_messages_are_each_rejected_for_their_reason() -> None:
    register = night().register
    seen: Counter[tuple[str, str]] = Counter()
    families: set[str] = set()
    offsets = itertools.count()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,  # the same 10,000 in CI every time
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        bad = bad_message(HypothesisSource(data))
        offset = next(offsets)
        verdict = validate_message(
            bad.value, FeedPosition("declarations", 3, offset, bad.key), register, NOW, LIMIT
        )
        assert isinstance(verdict, Rejected), f"{bad.kind} was accepted"
        rejection = verdict.rejection
        assert rejection.reason == bad.reason, (bad.kind, rejection.reason, rejection.detail)
        assert rejection.detail and len(rejection.detail) <= MAX_DETAIL_CHARS
        # Rejected by a check meant for it, not by the safety net for the unforeseen.
        assert "could not be validated" not in rejection.detail, rejection.detail
        assert rejection.source_offset == offset
        dead = rejection.model_dump_json().encode()
        assert Rejection.model_validate_json(dead) == rejection
        kept = base64.b64decode(rejection.original_b64)
        if bad.reason == "message_too_large":
            # A prefix, with the whole message's size and digest in the reason.
            assert kept == bad.value[:KEPT_PREFIX_BYTES]
            assert str(len(bad.value)) in rejection.detail and "sha256" in rejection.detail
            assert len(dead) <= OVERSIZED_DEAD_LETTER_MAX
        else:
            assert kept == bad.value
            assert len(dead) <= DEAD_LETTER_MAX
        if not bad.key:  # none, or empty
            assert rejection.original_key is None
        else:
            assert rejection.original_key is not None
            assert len(rejection.original_key.encode("utf-8", "replace")) <= 3 * MAX_KEY_BYTES
        seen[(bad.kind.split(":")[0], rejection.reason.value)] += 1
        families.add(bad.family)

    check()
    fuzzed = sum(seen.values())
    by_reason: Counter[str] = Counter()
    for (_, reason), count in seen.items():
        by_reason[reason] += count
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(
        json.dumps(
            {
                "messages_fuzzed": fuzzed,
                "rejected_by_reason": dict(by_reason.most_common()),
                "by_class": {f"{k}:{r}": n for (k, r), n in sorted(seen.items())},
            },
            indent=2,
        )
    )
    print(f"\nvalidator fuzz: {fuzzed} messages, all rejected; by reason {dict(by_reason)}")
    assert fuzzed >= FUZZ_EXAMPLES
    assert families == set(GENERATORS), "a class of bad input was never drawn"


def test_the_seeded_corpus_is_the_same_every_time_and_rejected_as_labelled() -> None:
    register = night().register
    first, again = corpus(300, seed=11), corpus(300, seed=11)
    assert first == again
    assert first != corpus(300, seed=12)
    for offset, bad in enumerate(first):
        verdict = validate_message(
            bad.value, FeedPosition("declarations", 0, offset, bad.key), register, NOW, LIMIT
        )
        assert isinstance(verdict, Rejected) and verdict.rejection.reason == bad.reason, bad.kind


def test_the_whole_true_night_is_still_accepted() -> None:
    """The new checks (names and parties as nominated, bounded figures) refuse no true result."""
    feed = night()
    for offset, (key, message) in enumerate(feed.messages()):
        raw = message.model_dump_json().encode()
        verdict = validate_message(
            raw, FeedPosition("declarations", 0, offset, key.encode()), feed.register, NOW, LIMIT
        )
        assert not isinstance(verdict, Rejected), verdict.rejection.detail


def test_a_message_at_the_limit_is_read_and_one_byte_over_is_not() -> None:
    register = night().register
    good = night().declarations[0].model_dump_json().encode()
    key = night().declarations[0].constituency_id.encode()
    position = FeedPosition("declarations", 0, 0, key)
    at_limit = len(good) + len(key)
    assert not isinstance(validate_message(good, position, register, NOW, at_limit), Rejected)
    verdict = validate_message(good, position, register, NOW, at_limit - 1)
    assert isinstance(verdict, Rejected)
    assert verdict.rejection.reason == "message_too_large"
    assert f"{at_limit} bytes" in verdict.rejection.detail
