"""The end-of-night summary of `election-night`: what its tables say."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from scripts.night import accounted_table, alerts_table, messages_consumed

# The counters after the clean 2024 night: the exit poll and 650 results, each counted once
# by validation and once more by its tally outcome.
CLEAN_NIGHT = {
    "validation:accepted": 651,
    "tally:applied": 650,
    "tally:exit_poll_applied": 1,
}

# A messy night: rejections by reason, duplicates, and messages delivered again after a crash.
MESSY_NIGHT = {
    "validation:accepted": 700,
    "validation:rejected:malformed_json": 3,
    "validation:rejected:schema_violation": 2,
    "validation:rejected:revision_conflict": 1,
    "tally:applied": 660,
    "tally:duplicate": 30,
    "tally:superseded": 9,
    "tally:exit_poll_applied": 1,
    "kafka:redelivered": 40,
}


def rows(table: Table) -> list[tuple[str, str]]:
    """The table's rows as (what, count), read back from its rendered text."""
    console = Console(width=120, record=True, color_system=None)
    console.print(table)
    found = []
    for line in console.export_text().splitlines():
        cells = [cell.strip() for cell in line.strip("│┃|").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            found.append((cells[0], cells[1]))
    return found


def test_the_clean_night_consumed_651_messages_not_1302() -> None:
    shown = rows(accounted_table(CLEAN_NIGHT))
    assert shown[-1] == ("messages consumed", "651")
    assert "1302" not in {count for _, count in shown}
    assert ("total", "1302") not in shown


def test_messages_consumed_is_accepted_plus_every_rejection() -> None:
    assert messages_consumed(MESSY_NIGHT) == 700 + 3 + 2 + 1
    shown = rows(accounted_table(MESSY_NIGHT))
    assert shown[-1] == ("messages consumed", "706")
    # Every counter keeps its own row, by name, before the sum.
    assert shown[:-1] == sorted((name, str(count)) for name, count in MESSY_NIGHT.items())


def test_no_messages_is_zero_consumed() -> None:
    assert rows(accounted_table({})) == [("messages consumed", "0")]


def test_the_alerts_table_still_totals_every_type() -> None:
    shown = rows(alerts_table({"seat_gain": 230, "majority_won": 1, "exit_poll": 1}))
    assert shown == [
        ("exit_poll", "1"),
        ("majority_won", "1"),
        ("seat_gain", "230"),
        ("total", "232"),
    ]
