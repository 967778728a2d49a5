"""Malformed, oversized, wrongly typed and adversarial feed messages, each with its expected reason.

Every generator takes a `Source` of choices: under Hypothesis it draws (and shrinks) from
`st.data()`, in the integration test it is a seeded `random.Random`, so one definition of
each class of bad input serves both. Every message made here must be rejected, and for
the reason it carries: none of them is a valid declaration by accident.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Protocol, TypeVar

import orjson
from hypothesis import strategies as st

from schemas.declaration import MAX_COUNT, MAX_REVISION
from schemas.rejection import RejectionReason as R
from scripts.night_builder import Night, build_night
from tests.unit.ge2024 import DATA_DIR

T = TypeVar("T")
LIMIT = 256 * 1024  # ELECTION_MAX_MESSAGE_BYTES's default, which the worker under test keeps

# Names a feed (or an attacker) could send that must never reach a page or a terminal as
# anything but text: markup, script, control and bidirectional-override characters.
ADVERSARIAL_NAMES = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[bold red]Keir Starmer[/]",
    "[link=https://example.org]click[/link]",
    "Keir\u202eremratS",  # right-to-left override
    "Keir\u200bStarmer",  # zero-width space
    "Keir\x00Starmer",
    "Keir\x1b[31mStarmer",
    "Keir\r\nStarmer: injected",
    "Robert'); DROP TABLE candidates;--",
    "{{7*7}}",
    "${jndi:ldap://example.org/a}",
    "\ufeffKeir Starmer",
    "K\u0308eir Starmer",
]
MARKUP_ALPHABET = (
    "<>/\"'&[]{}=;:()\\ \t\n\r\x00\x07\x1b\u202a\u202b\u202d\u202e\u2066\u2069\ufeffabcXYZ"
)


class Source(Protocol):
    """The choices a generator makes; Hypothesis or a seeded Random behind it."""

    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...

    def text(self, alphabet: str, low: int, high: int) -> str: ...


class RandomSource:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def text(self, alphabet: str, low: int, high: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(low, high)))


class HypothesisSource:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(options))

    def text(self, alphabet: str, low: int, high: int) -> str:
        return self.data.draw(st.text(alphabet=alphabet, min_size=low, max_size=high))


@dataclass(frozen=True)
class BadMessage:
    kind: str  # the class of bad input
    key: bytes | None
    value: bytes
    reason: R  # the rejection reason validation must give
    family: str = ""  # the GENERATORS entry that made it


@cache
def night() -> Night:
    return build_night(DATA_DIR)


def _result(src: Source) -> dict[str, Any]:
    """A seat's true result as a JSON object, to spoil."""
    declarations = night().declarations
    declaration = declarations[src.integer(0, len(declarations) - 1)]
    payload: dict[str, Any] = orjson.loads(declaration.model_dump_json())
    return payload


def _exit_poll() -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(night().exit_poll.model_dump_json())
    return payload


def _filler(src: Source, size: int) -> bytes:
    # Cheap bulk bytes from one drawn seed: Hypothesis need not draw 300 KB one by one.
    return random.Random(src.integer(0, 2**32)).randbytes(size)


def _key(src: Source, payload: dict[str, Any] | None = None) -> bytes | None:
    if src.integer(0, 9) == 0:
        return None  # a null key: the producer sent none
    if payload is not None and "constituency_id" in payload:
        return str(payload["constituency_id"]).encode()
    return src.choice([b"E14001497", b"exit-poll", b"", b"\xff\xfe", b"x" * 200])


def _message(kind: str, src: Source, payload: dict[str, Any], reason: R) -> BadMessage:
    # The standard library writes integers of any size, as a careless producer might.
    value = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return BadMessage(kind, _key(src, payload), value, reason)


# ---- bytes that are not a JSON message ----


def not_json(src: Source) -> BadMessage:
    value = src.choice(
        [
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            b"ERROR: upstream timed out",
            b"\x00\x01\x02\x03",
            b"E14001497,Labour,12345",
            b"{'single': 'quotes'}",
            b"undefined",
        ]
    ) + _filler(src, src.integer(0, 64))
    return BadMessage("not_json", _key(src), value, R.MALFORMED_JSON)


def truncated_json(src: Source) -> BadMessage:
    good = orjson.dumps(_result(src))
    # Any proper prefix of an object lacks its closing brace, so none is JSON.
    return BadMessage(
        "truncated_json", _key(src), good[: src.integer(1, len(good) - 1)], R.MALFORMED_JSON
    )


def wrong_encoding(src: Source) -> BadMessage:
    payload = _result(src)
    text = orjson.dumps(payload).decode()
    how = src.choice(["utf-16", "utf-16-be", "utf-32", "latin-1", "utf-8-bom", "invalid-utf-8"])
    if how == "latin-1":
        # A non-ASCII letter that latin-1 writes as one byte, which is not UTF-8.
        value = text.replace('"source":"', '"source":"café ', 1).encode("latin-1")
    elif how == "utf-8-bom":
        value = b"\xef\xbb\xbf" + text.encode()
    elif how == "invalid-utf-8":
        raw = text.encode()
        at = raw.index(b'"source":"') + len(b'"source":"')
        value = raw[:at] + src.choice([b"\xc3\x28", b"\xff", b"\xed\xa0\x80", b"\x80"]) + raw[at:]
    else:
        value = text.encode(how)
    return BadMessage(f"wrong_encoding:{how}", _key(src, payload), value, R.MALFORMED_JSON)


def empty_value(src: Source) -> BadMessage:
    return BadMessage("empty_value", _key(src), b"", R.MALFORMED_JSON)


def recursion_bomb(src: Source) -> BadMessage:
    depth = src.integer(1100, 30_000)  # orjson reads at most 1024 levels; under the limit
    opener, closer = src.choice([(b"[", b"]"), (b'{"a":', b"}")])
    bomb = opener * depth + b"1" + closer * depth
    if src.integer(0, 1):
        # Inside an otherwise plausible declaration, as an extra field.
        head = orjson.dumps(_result(src))[:-1]
        bomb = head + b',"extra":' + bomb + b"}"
    return BadMessage("recursion_bomb", _key(src), bomb, R.MALFORMED_JSON)


def oversized(src: Source) -> BadMessage:
    # Over the limit but under the broker's own (1 MiB), so Kafka delivers it to us.
    size = src.integer(LIMIT + 1, 900 * 1024)
    payload = _result(src)
    shape = src.choice(["padded_json", "long_name", "binary"])
    if shape == "binary":
        value = _filler(src, size)
    else:
        field = "source" if shape == "padded_json" else "constituency_name"
        payload[field] = "A" * size
        value = orjson.dumps(payload)
    return BadMessage(f"oversized:{shape}", _key(src, payload), value, R.MESSAGE_TOO_LARGE)


def oversized_key(src: Source) -> BadMessage:
    key = b"K" * src.integer(LIMIT + 1, 400 * 1024)
    return BadMessage("oversized_key", key, orjson.dumps(_result(src)), R.MESSAGE_TOO_LARGE)


# ---- JSON objects that break the contract ----


def huge_numbers(src: Source) -> BadMessage:
    payload = _result(src)
    big = src.choice(
        [
            MAX_COUNT + 1,
            2**31,
            2**53 + 1,
            2**63 - 1,
            2**63,
            2**64 - 1,
            2**64,
            10**30,
            src.integer(MAX_COUNT + 1, 2**70),
        ]
    )
    where = src.choice(
        ["votes", "electorate", "valid_votes", "rejected_ballots", "revision", "scaled"]
    )
    if where == "votes":
        payload["candidates"][src.integer(0, len(payload["candidates"]) - 1)]["votes"] = big
    elif where == "revision":
        payload["revision"] = max(big, MAX_REVISION + 1)
    elif where == "scaled":
        # Every figure multiplied up, so that the arithmetic still adds up.
        factor = big // max(payload["electorate"], 1) + 1
        for candidate in payload["candidates"]:
            candidate["votes"] *= factor
        for name in ("electorate", "valid_votes", "rejected_ballots"):
            payload[name] *= factor
    else:
        payload[where] = big
    return _message(f"huge_number:{where}", src, payload, R.SCHEMA_VIOLATION)


def non_integers(src: Source) -> BadMessage:
    payload = _result(src)
    text = orjson.dumps(payload)
    where = src.choice(["votes", "electorate", "revision"])
    if src.integer(0, 1):
        literal = src.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
        field = b'"votes":' if where == "votes" else f'"{where}":'.encode()
        at = text.index(field) + len(field)
        end = min(i for i in (text.find(b",", at), text.find(b"}", at)) if i >= 0)
        return BadMessage(
            f"non_finite:{literal.decode()}",
            _key(src, payload),
            text[:at] + literal + text[end:],
            R.MALFORMED_JSON,
        )
    fraction = src.integer(1, 99) / 100 + src.integer(0, 1000)
    if where == "votes":
        payload["candidates"][0]["votes"] = fraction
    else:
        payload[where] = fraction
    return _message(f"float:{where}", src, payload, R.SCHEMA_VIOLATION)


def negative_numbers(src: Source) -> BadMessage:
    payload = _result(src)
    value = -src.integer(1, 2**40)
    where = src.choice(["votes", "electorate", "valid_votes", "rejected_ballots", "revision"])
    if where == "votes":
        payload["candidates"][src.integer(0, len(payload["candidates"]) - 1)]["votes"] = value
    else:
        payload[where] = value
    return _message(f"negative:{where}", src, payload, R.SCHEMA_VIOLATION)


# Values lax validation cannot turn into the field's type (no numeric strings, no bools
# for numbers: those it would convert).
WRONG_FOR_NUMBER: list[Any] = ["many", "", [1], {"n": 1}, "12 votes", "0x10"]
WRONG_FOR_TEXT: list[Any] = [1, 2.5, True, [], {"name": "x"}]


WRONG_TYPE_FIELDS = [
    *("votes", "electorate", "revision", "person_id", "name", "party", "kind", "declared_at"),
    *("candidates", "elected", "tie_declared", "ballot_id", "constituency_id"),
]


def wrong_types(src: Source) -> BadMessage:
    payload = _result(src)
    candidate = payload["candidates"][src.integer(0, len(payload["candidates"]) - 1)]
    where = src.choice(WRONG_TYPE_FIELDS)
    if where == "votes":
        candidate["votes"] = src.choice(WRONG_FOR_NUMBER)
    elif where == "person_id":
        candidate["person_id"] = src.choice([*WRONG_FOR_NUMBER, None])
    elif where == "name":
        candidate["name"] = src.choice([*WRONG_FOR_TEXT, None])
    elif where == "party":
        candidate["party"] = src.choice(["Lab", 7, ["Lab"], None])
    elif where == "elected":
        candidate["elected"] = src.choice(["perhaps", [True], {"yes": 1}, 2])
    elif where == "candidates":
        payload["candidates"] = src.choice(["all of them", 3, {"0": candidate}, [1, 2]])
    elif where == "tie_declared":
        payload["tie_declared"] = src.choice(["perhaps", [], 7])
    elif where in {"electorate", "revision"}:
        payload[where] = src.choice(WRONG_FOR_NUMBER)
    elif where == "declared_at":
        # (A number would pass: it reads as a Unix time.) A naive time lacks its offset.
        payload[where] = src.choice(["last night", [], {"at": 1}, "2024-07-05T07:00:00"])
    else:
        payload[where] = src.choice([*WRONG_FOR_TEXT, None, "not an id"])
    return _message(f"wrong_type:{where}", src, payload, R.SCHEMA_VIOLATION)


# Required fields, and the reason their absence gets (the first checks come first).
REQUIRED: dict[str, R] = {
    "schema_version": R.UNSUPPORTED_SCHEMA_VERSION,
    "election_id": R.WRONG_ELECTION,
    "message_type": R.SCHEMA_VIOLATION,
    "ballot_id": R.SCHEMA_VIOLATION,
    "constituency_id": R.SCHEMA_VIOLATION,
    "constituency_name": R.SCHEMA_VIOLATION,
    "kind": R.SCHEMA_VIOLATION,
    "revision": R.SCHEMA_VIOLATION,
    "declared_at": R.SCHEMA_VIOLATION,
    "source": R.SCHEMA_VIOLATION,
    "candidates.person_id": R.SCHEMA_VIOLATION,
    "candidates.name": R.SCHEMA_VIOLATION,
    "candidates.party": R.SCHEMA_VIOLATION,
    "candidates.party.abbreviation": R.SCHEMA_VIOLATION,
}


def missing_field(src: Source) -> BadMessage:
    payload = _result(src)
    field = src.choice(list(REQUIRED))
    candidate = payload["candidates"][src.integer(0, len(payload["candidates"]) - 1)]
    if field == "candidates.party.abbreviation":
        del candidate["party"]["abbreviation"]
    elif field.startswith("candidates."):
        del candidate[field.split(".", 1)[1]]
    else:
        del payload[field]
    return _message(f"missing:{field}", src, payload, REQUIRED[field])


def extra_field(src: Source) -> BadMessage:
    payload = _result(src)
    name = src.choice(["winner", "Votes", "__proto__", "$where", "constructor", "x" * 300])
    value = src.choice([1, "x", None, [], {"nested": True}])
    target = src.choice(["message", "candidate", "party"])
    if target == "message":
        payload[name] = value
    elif target == "candidate":
        payload["candidates"][0][name] = value
    else:
        payload["candidates"][0]["party"][name] = value
    return _message(f"extra_field:{target}", src, payload, R.SCHEMA_VIOLATION)


def unknown_ids(src: Source) -> BadMessage:
    payload = _result(src)
    what = src.choice(
        ["constituency", "constituency_pattern", "candidate", "party", "party_name", "ballot"]
    )
    reason = R.UNKNOWN_CONSTITUENCY
    if what == "constituency":
        # The right shape, no such seat (E14001/W07000/S14000/N05000 ids are the real ones).
        payload["constituency_id"] = f"{src.choice('ENSW')}{src.integer(90_000_000, 99_999_999)}"
    elif what == "constituency_pattern":
        payload["constituency_id"] = src.choice(["E1400149", "e14001497", "E14001497 ", "X"])
        reason = R.SCHEMA_VIOLATION
    elif what == "candidate":
        payload["candidates"][0]["person_id"] = src.integer(10_000_000, 2**62)
        reason = R.UNKNOWN_CANDIDATE
    elif what == "party":
        payload["candidates"][0]["party"]["abbreviation"] = src.choice(
            ["XYZ", "Labour", "lab", "Con ", "Reform"]
        )
        reason = R.CANDIDATE_MISMATCH
    elif what == "party_name":
        payload["candidates"][0]["party"]["name"] = src.choice(ADVERSARIAL_NAMES)
        reason = R.CANDIDATE_MISMATCH
    else:
        payload["ballot_id"] = "parl.somewhere-else.2024-07-04"
    return _message(f"unknown_id:{what}", src, payload, reason)


def wrong_election(src: Source) -> BadMessage:
    payload = _result(src)
    noise = src.text(MARKUP_ALPHABET, 1, 40)
    payload["election_id"] = src.choice(
        ["parl.2019-12-12", "local.2024-05-02", "parl.2024-07-05", "", None, 2024, ["parl"], noise]
    )
    return _message("wrong_election", src, payload, R.WRONG_ELECTION)


def adversarial_names(src: Source) -> BadMessage:
    payload = _result(src)
    name = src.choice([*ADVERSARIAL_NAMES, src.text(MARKUP_ALPHABET, 1, 60)])
    where = src.choice(["candidate", "constituency", "appended"])
    if where == "candidate":
        payload["candidates"][src.integer(0, len(payload["candidates"]) - 1)]["name"] = name
        reason = R.CANDIDATE_MISMATCH
    elif where == "constituency":
        payload["constituency_name"] = name
        reason = R.UNKNOWN_CONSTITUENCY
    else:
        # The true name with something riding on it.
        payload["candidates"][0]["name"] += name
        reason = R.CANDIDATE_MISMATCH
    if not name.strip():
        # Blank after stripping: an empty name is the schema's to refuse, not the register's.
        payload = _result(src)
        payload["candidates"][0]["name"] = ""
        reason = R.SCHEMA_VIOLATION
    return _message(f"adversarial_name:{where}", src, payload, reason)


def long_strings(src: Source) -> BadMessage:
    payload = _result(src)
    size = src.integer(1_000, 200_000)  # long, but under the size limit
    where = src.choice(["name", "constituency_name", "source", "ballot_id", "kind"])
    reason = {
        "name": R.CANDIDATE_MISMATCH,
        "constituency_name": R.UNKNOWN_CONSTITUENCY,
    }.get(where, R.SCHEMA_VIOLATION)
    if where == "name":
        payload["candidates"][0]["name"] = "N" * size
    else:
        payload[where] = "s" * size
    return _message(f"long_string:{where}", src, payload, reason)


def bad_exit_poll(src: Source) -> BadMessage:
    payload = _exit_poll()
    what = src.choice(["party", "total", "adds_up", "negative"])
    reason = R.SCHEMA_VIOLATION
    if what == "party":
        payload["projections"][0]["party"] = src.choice(
            ["<b>Lab</b>", "[red]Con[/]", "\u202eLab", "Labour Party", "Nobody"]
        )
        reason = R.UNKNOWN_PARTY
    elif what == "total":
        extra = src.integer(1, 10**6)
        payload["total_seats"] += extra
        payload["projections"][-1]["seats"] += extra
    elif what == "adds_up":
        payload["projections"][0]["seats"] += src.integer(1, 100)
    else:
        payload["projections"][0]["seats"] = -src.integer(1, 100)
    return BadMessage(f"exit_poll:{what}", _key(src), orjson.dumps(payload), reason)


def implausible_times(src: Source) -> BadMessage:
    """Dated outside the night: a declaration before polls closed, or either kind after the
    night's end (ELECTION_NIGHT_ENDS_HOURS_AFTER_POLLS_CLOSE, 72 hours by default; these are
    days on).

    None is `declared_in_future`: that needs a clock between polls closing and the night's
    end, and a worker run today reads every 2024 time as past; test_validation injects one.
    """
    polls_close = night().register.polls_close
    what = src.choice(["before_polls_closed", "after_night_ended", "exit_poll_after_night_ended"])
    if what == "before_polls_closed":
        at = polls_close - dt.timedelta(seconds=src.integer(1, 400 * 86_400))
    else:
        at = src.choice(
            [
                dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
                dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
                polls_close
                + dt.timedelta(days=src.integer(4, 3650), seconds=src.integer(0, 86_399)),
            ]
        )
    if what == "exit_poll_after_night_ended":
        payload = _exit_poll()
        payload["published_at"] = at.isoformat()
        value = orjson.dumps(payload)
        return BadMessage(
            f"implausible_time:{what}", _key(src), value, R.DECLARED_AFTER_NIGHT_ENDED
        )
    payload = _result(src)
    payload["declared_at"] = at.isoformat()
    reason = (
        R.DECLARED_BEFORE_POLLS_CLOSED
        if what == "before_polls_closed"
        else R.DECLARED_AFTER_NIGHT_ENDED
    )
    return _message(f"implausible_time:{what}", src, payload, reason)


def not_an_object(src: Source) -> BadMessage:
    value = src.choice([b"[]", b"null", b"42", b'"declaration"', b"true", b"[{}]"])
    return BadMessage("not_an_object", _key(src), value, R.SCHEMA_VIOLATION)


GENERATORS: dict[str, Callable[[Source], BadMessage]] = {
    "not_json": not_json,
    "truncated_json": truncated_json,
    "wrong_encoding": wrong_encoding,
    "empty_value": empty_value,
    "recursion_bomb": recursion_bomb,
    "oversized": oversized,
    "oversized_key": oversized_key,
    "huge_numbers": huge_numbers,
    "non_integers": non_integers,
    "negative_numbers": negative_numbers,
    "wrong_types": wrong_types,
    "missing_field": missing_field,
    "extra_field": extra_field,
    "unknown_ids": unknown_ids,
    "wrong_election": wrong_election,
    "adversarial_names": adversarial_names,
    "long_strings": long_strings,
    "bad_exit_poll": bad_exit_poll,
    "implausible_times": implausible_times,
    "not_an_object": not_an_object,
}
# The big ones are rarer, so a corpus of thousands stays a few tens of megabytes.
WEIGHTS = {name: 1 for name in GENERATORS} | {
    "oversized": 0.15,
    "oversized_key": 0.05,
    "recursion_bomb": 0.3,
    "long_strings": 0.3,
}


# Each family's name as often as its weight says, for a choice that Hypothesis (which draws
# small integers more often than large ones) and Random both make in proportion.
DRAW_TABLE = [name for name, weight in WEIGHTS.items() for _ in range(round(weight * 20))]


def bad_message(src: Source) -> BadMessage:
    """One bad message of a class chosen with WEIGHTS."""
    name = src.choice(DRAW_TABLE)
    return replace(GENERATORS[name](src), family=name)


def corpus(count: int, seed: int) -> list[BadMessage]:
    """`count` bad messages, the same for the same seed."""
    src = RandomSource(random.Random(seed))
    return [bad_message(src) for _ in range(count)]
