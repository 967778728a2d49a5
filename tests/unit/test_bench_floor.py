"""The floor benchmark's arguments and its table, on fixed figures: no Kafka, no timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench.floor import MIN_MESSAGES, Floor, parse_args, report

FLOORS = [
    Floor("kafka-python KafkaProducer", 100_000, 2.0, 2.5),
    Floor("Faust agent, nothing per event", 99_000, 4.0, 1.0),
    Floor("Faust agent, orjson.loads per event", 99_000, 5.0, 1.5),
    Floor("aiokafka AIOKafkaConsumer", 95_000, 0.5, 0.4),
]


def _table(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def test_the_defaults_are_the_documented_run() -> None:
    args = parse_args([])
    assert args.messages == 100_000
    assert args.partitions == 4
    assert args.timeout > 0
    assert args.faust_worker is None and args.write is None


def test_options_are_read() -> None:
    args = parse_args(
        ["--messages", "20000", "--partitions", "2", "--timeout", "30", "--write", "out.md"]
    )
    assert (args.messages, args.partitions, args.timeout) == (20_000, 2, 30.0)
    assert args.write == Path("out.md")


@pytest.mark.parametrize(
    "argv",
    [
        ["--messages", str(MIN_MESSAGES - 1)],
        ["--partitions", "0"],
        ["--timeout", "0"],
        ["--faust-worker", "noop"],  # a worker needs its topic, app id, folder and result file
        ["--faust-worker", "sleep", "--topic", "t", "--app-id", "a", "--datadir", "d"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_worker_arguments_are_read() -> None:
    args = parse_args(
        [
            "--faust-worker",
            "loads",
            "--topic",
            "bench-floor-x",
            "--app-id",
            "bench-floor-loads-x",
            "--datadir",
            "/tmp/f",
            "--result-file",
            "/tmp/f/r.json",
        ]
    )
    assert (args.faust_worker, args.topic, args.app_id) == (
        "loads",
        "bench-floor-x",
        "bench-floor-loads-x",
    )
    assert args.datadir == Path("/tmp/f") and args.result_file == Path("/tmp/f/r.json")


def test_the_table_has_a_row_per_floor_with_its_rates() -> None:
    text = report(FLOORS, 1_278, 4, "`crc32c` C extension importable (2.9)", "faust 0.15")
    rows = _table(text)
    assert rows[0] == [
        "floor",
        "messages timed",
        "wall, s",
        "CPU, s",
        "CPU/wall, cores",
        "messages/s",
        "CPU per message, µs",
    ]
    assert set(rows[1]) == {"---"}
    assert rows[2:] == [
        ["kafka-python KafkaProducer", "100,000", "2.00", "2.50", "1.25", "50,000", "25.0"],
        ["Faust agent, nothing per event", "99,000", "4.00", "1.00", "0.25", "24,750", "10.1"],
        [
            "Faust agent, orjson.loads per event",
            "99,000",
            "5.00",
            "1.50",
            "0.30",
            "19,800",
            "15.2",
        ],
        ["aiokafka AIOKafkaConsumer", "95,000", "0.50", "0.40", "0.80", "190,000", "4.2"],
    ]
    assert "declarations of 1,278 bytes on one topic of 4 partitions" in text
    assert "`crc32c` C extension importable (2.9)." in text
    assert "Libraries: faust 0.15." in text


def test_a_floor_that_timed_nothing_shows_dashes_instead_of_dividing_by_zero() -> None:
    rows = _table(report([Floor("empty", 0, 0.0, 0.0)], 1_000, 1, "crc", "libs"))
    assert rows[2] == ["empty", "0", "0.00", "0.00", "-", "-", "-"]
