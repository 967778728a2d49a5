"""The committed JSON Schemas and AsyncAPI document match the models and accept real traffic;
the AsyncAPI document is valid AsyncAPI."""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from schemas.alert import Alert, AlertPriority, AlertType
from schemas.generate import (
    ASYNCAPI_NAME,
    ASYNCAPI_SCHEMAS_DIR,
    ASYNCAPI_VERSION,
    CONTRACTS,
    SCHEMAS_DIR,
    asyncapi,
    asyncapi_errors,
    main,
    stale,
    write,
)
from scripts.chaos import ChaosRates, inject_chaos
from scripts.night_builder import Night, build_night
from streams.rules.tally import seat_contribution, seat_result, state_of_parties
from streams.rules.validation import FeedPosition, Rejected, validate_message
from streams.settings import Settings

DATA_DIR = Path(__file__).resolve().parents[2] / "streams" / "data" / "ge2024"
JSON_DIR = SCHEMAS_DIR / "json"

# jsonschema checks date-time only with an optional package; this is the rule that matters.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _aware_datetime(value: object) -> bool:
    return not isinstance(value, str) or dt.datetime.fromisoformat(value).tzinfo is not None


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((JSON_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FORMATS)


def asyncapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMAS_DIR / ASYNCAPI_NAME).read_text("utf-8"))
    return document


@pytest.fixture(scope="module")
def night() -> Night:
    return build_night(DATA_DIR)


def test_the_committed_files_are_what_the_models_generate() -> None:
    problems = stale()
    assert problems == [], "stale generated files; run: python -m schemas.generate\n" + "\n".join(
        problems
    )


def test_check_lists_stale_missing_and_unexpected_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path)
    assert main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "json" / "alert.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "json" / "rejection.schema.json").unlink()
    (tmp_path / "json" / "ballot.schema.json").write_text("{}\n", encoding="utf-8")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "stale: " in err and "alert.schema.json" in err
    assert "missing: " in err and "rejection.schema.json" in err
    assert "unexpected: " in err and "ballot.schema.json" in err
    assert main(["--root", str(tmp_path)]) == 0
    assert stale(tmp_path) == []
    assert not (tmp_path / "json" / "ballot.schema.json").exists()


def test_files_are_sorted_indented_and_end_with_a_newline() -> None:
    for contract in CONTRACTS:
        text = (JSON_DIR / contract.file_name).read_text(encoding="utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_every_schema_is_a_2020_12_schema_requiring_version_and_type(contract: Any) -> None:
    schema = json.loads((JSON_DIR / contract.file_name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert {"schema_version", "message_type"} <= set(schema["required"])
    assert schema["properties"]["schema_version"]["const"] == "1"
    assert schema["properties"]["message_type"]["const"] == contract.name
    assert schema["additionalProperties"] is False


def _errors(name: str, instance: object) -> list[SchemaError]:
    return list(validator(name).iter_errors(instance))


def test_the_whole_night_with_chaos_fits_the_input_schemas(night: Night) -> None:
    feed = inject_chaos(night, 7, ChaosRates(rush=0.3, correction=0.2, recount_closest=10))
    for item in feed:
        if item.must_be_rejected:
            continue
        payload = orjson.loads(item.value)
        assert _errors(payload["message_type"], payload) == [], item.label


@pytest.mark.parametrize(
    "label", ["invalid:negative_votes", "invalid:missing_field", "invalid:unknown_schema_version"]
)
def test_the_schema_catches_what_json_schema_can(night: Night, label: str) -> None:
    only_invalid = ChaosRates(0.0, 0.0, 0.0, 0.0, recount_closest=0, malformed=0.0, invalid=0.05)
    feed = inject_chaos(night, 7, only_invalid)
    spoiled = next(item for item in feed if item.label == label)
    assert _errors("declaration", orjson.loads(spoiled.value))


def test_naive_times_extra_fields_and_bad_ids_fail(night: Night) -> None:
    good = night.declarations[0].model_dump(mode="json")
    assert _errors("declaration", good) == []
    for change in (
        {"declared_at": "2024-07-04T23:17:00"},
        {"winner": "Bridget Phillipson"},
        {"ballot_id": "parl.2024-07-04"},
        {"election_id": "parl.houghton-and-sunderland-south.2024-07-04"},
        {"constituency_id": "Houghton"},
        {"kind": "provisional"},
    ):
        assert _errors("declaration", {**good, **change}), change
    without_version = {k: v for k, v in good.items() if k != "schema_version"}
    assert _errors("declaration", without_version)
    poll = night.exit_poll.model_dump(mode="json")
    assert _errors("exit_poll", poll) == []
    assert _errors("exit_poll", {**poll, "published_at": "2024-07-04T22:00:00"})


def _outputs(night: Night) -> Iterator[tuple[str, dict[str, Any]]]:
    totals: dict[str, int] = {}
    for sequence, declaration in enumerate(night.declarations[:40], start=1):
        ref = night.register.constituencies[declaration.constituency_id]
        result = seat_result(declaration, ref, sequence)
        yield "seat_result", orjson.loads(result.model_dump_json())
        for key, value in seat_contribution(declaration, ref).items():
            totals[key] = totals.get(key, 0) + value
        state = state_of_parties(
            totals, night.register, sequence, declaration.declared_at, declaration.constituency_id
        )
        yield "state_of_parties", orjson.loads(state.model_dump_json())
    verdict = validate_message(b"{not json", FeedPosition("declarations", 0, 7), night.register)
    assert isinstance(verdict, Rejected)
    yield "rejection", orjson.loads(verdict.rejection.model_dump_json())
    first = night.declarations[0]
    alert = Alert(
        alert_id="first-declaration",
        election_id=night.register.election_id,
        rehearsal=True,
        type=AlertType.FIRST_DECLARATION,
        priority=AlertPriority.HIGH,
        headline="First result of the night",
        body="Houghton and Sunderland South declares first.",
        occurred_at=first.declared_at,
        constituency_id=first.constituency_id,
        figures={"majority": 7168, "share": 0.47},
    )
    yield "alert", orjson.loads(alert.model_dump_json())


def test_what_the_processor_writes_fits_the_output_schemas(night: Night) -> None:
    seen = set()
    for name, payload in _outputs(night):
        assert _errors(name, payload) == [], (name, payload)
        seen.add(name)
        # Outputs always carry every field, so a consumer can rely on each one being there.
        for field in ("schema_version", "election_id", next(reversed(payload))):
            assert _errors(name, {k: v for k, v in payload.items() if k != field}), field
    assert seen == {"seat_result", "state_of_parties", "rejection", "alert"}


def test_asyncapi_describes_every_topic_with_keys_and_schemas() -> None:
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    defaults = Settings.model_fields
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {
        defaults[field].default
        for field in (
            "topic_declarations",
            "topic_dead_letter",
            "topic_results",
            "topic_state",
            "topic_alerts",
            "topic_newsroom",
            "topic_audit",
        )
    }

    def resolve(ref: str) -> Any:
        assert ref.startswith("#/"), ref
        target: Any = document
        for step in ref[2:].split("/"):
            target = target[step]
        return target

    by_address = {c["address"]: c for c in document["channels"].values()}
    expected = {
        "declarations": {"declaration", "exit_poll"},
        "declarations-dead-letter": {"rejection", "feed_refusal"},
        "results": {"seat_result"},
        "state-of-parties": {"state_of_parties"},
        "alerts": {"alert"},
    }
    for address, names in expected.items():
        channel = by_address[address]
        assert set(channel["messages"]) == names
        assert channel["bindings"]["kafka"]["topic"] == address
        for message_ref in channel["messages"].values():
            message = resolve(message_ref["$ref"])
            assert "key" in message["bindings"]["kafka"]
            payload = SCHEMAS_DIR / message["payload"]["$ref"]
            assert payload.is_file(), payload
    assert by_address["declarations"]["bindings"]["kafka"]["partitions"] == 4
    messages = document["components"]["messages"]
    assert messages["rejection"]["headers"]["required"] == ["reason"]
    for name in ("seat_result", "state_of_parties", "alert"):
        # streams/pipeline/publisher.py: everything the outbox publishes carries its position.
        assert set(messages[name]["headers"]["required"]) == {"outbox-seq", "outbox-epoch"}
    assert messages["exit_poll"]["bindings"]["kafka"]["key"]["const"] == "exit-poll"
    for operation in document["operations"].values():
        channel = resolve(operation["channel"]["$ref"])
        for message_ref in operation["messages"]:
            assert resolve(message_ref["$ref"]) in channel["messages"].values()
    actions = {
        (op["action"], resolve(op["channel"]["$ref"])["address"])
        for op in document["operations"].values()
    }
    assert ("receive", "declarations") in actions and ("send", "results") in actions


# ---- the AsyncAPI document against the official AsyncAPI JSON Schema ----


def test_the_document_is_valid_asyncapi_checked_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object) -> None:
        raise AssertionError("validating the AsyncAPI document must not fetch anything")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    document = asyncapi_document()
    schema = json.loads((ASYNCAPI_SCHEMAS_DIR / f"{ASYNCAPI_VERSION}.json").read_text("utf-8"))
    assert schema["$id"] == f"http://asyncapi.com/definitions/{ASYNCAPI_VERSION}/asyncapi.json"
    assert asyncapi_errors(document) == []


def _broken(change: str) -> dict[str, Any]:
    document = copy.deepcopy(asyncapi())
    if change == "misspelt channel field":
        document["channels"]["declarations"]["adress"] = "declarations"
    elif change == "partitions as text":
        document["channels"]["results"]["bindings"]["kafka"]["partitions"] = "four"
    elif change == "AsyncAPI 2 action":
        document["operations"]["sendResults"]["action"] = "publish"
    elif change == "no info":
        del document["info"]
    else:
        document["asyncapi"] = "9.9.9"
    return document


@pytest.mark.parametrize(
    ("change", "told"),
    [
        (
            "misspelt channel field",
            ("$.channels.declarations: no branch of its oneOf fits", "'adress' does not match"),
        ),
        ("partitions as text", ("$.channels.results.bindings.kafka.partitions: 'four' is not",)),
        ("AsyncAPI 2 action", ("$.operations.sendResults.action: 'publish' is not one of",)),
        ("no info", ("$: 'info' is a required property",)),
        ("unknown version", ("no vendored AsyncAPI JSON Schema for asyncapi '9.9.9'",)),
    ],
)
def test_a_broken_document_fails_validation(change: str, told: tuple[str, ...]) -> None:
    errors = asyncapi_errors(_broken(change))
    assert len(errors) == 1 and all(part in errors[0] for part in told), errors


def test_check_fails_on_an_invalid_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("schemas.generate.asyncapi", lambda: _broken("misspelt channel field"))
    write(tmp_path)
    assert stale(tmp_path) == []  # fresh: only the validation can fail the check
    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "invalid AsyncAPI document: $.channels.declarations" in err
