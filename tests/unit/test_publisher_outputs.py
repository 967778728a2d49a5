"""The publisher's outputs: remembering each seat's last result changes none of them."""

from __future__ import annotations

import fakeredis
import orjson

from streams.alert_rules import AlertPolicy
from streams.outbox import Output
from streams.publisher import SeatMemory, outputs_of_changes
from streams.settings import Settings
from streams.tally import RunningTotals
from streams.tally_store import Change, PendingApply, TallyStore
from streams.watchlist import load_watchlist
from tests.unit.tally_fixtures import DATA_DIR, eventful_revisions, night

ELECTION = "parl.2024-07-04"


async def _change_log() -> tuple[TallyStore, int]:
    """The night's first 120 seats, every fourth at its most eventful (rush, result, recount,
    correction that swaps the top two), interleaved so a seat's revisions are far apart."""
    store = TallyStore(fakeredis.FakeAsyncRedis(), ELECTION, "memo:", night().register)
    declarations = night().declarations[:120]
    rounds = [eventful_revisions(d) if i % 4 == 0 else [d] for i, d in enumerate(declarations)]
    feed = [seat[r] for r in range(4) for seat in rounds if r < len(seat)]
    pending = [PendingApply(d, "declarations", 0, offset) for offset, d in enumerate(feed)]
    outcomes = await store.apply_batch(pending)
    assert {o.outcome for o in outcomes} == {"applied"}
    return store, len(feed)


class _Publishing:
    """outputs_of_changes batch after batch, from nothing declared, as the publisher calls it."""

    def __init__(self, memory: SeatMemory | None) -> None:
        self.memory = memory
        self.running = RunningTotals({}, 0)
        self.watchlist = load_watchlist(DATA_DIR / "watchlist.csv")
        self.policy = AlertPolicy.from_settings(Settings())

    def batch(self, changes: list[Change]) -> list[tuple[int, list[Output]]]:
        return outputs_of_changes(
            changes, self.running, night().register, self.watchlist, self.policy, self.memory
        )


def _published(
    batches: list[list[Change]], memory: SeatMemory | None
) -> list[tuple[int, list[Output]]]:
    publishing = _Publishing(memory)
    return [announced for batch in batches for announced in publishing.batch(batch)]


async def test_remembered_results_and_outcomes_give_the_same_outputs() -> None:
    store, count = await _change_log()
    memory = SeatMemory()
    publishing = _Publishing(memory)
    plain: list[list[Change]] = []
    remembered: list[list[Change]] = []
    after = 0
    # Batches of 37 changes, read as the publisher reads them: the second way parses each
    # seat's previous result only when it is not the one announced last for the seat.
    while after < count:
        plain.append(await store.changes(after=after, count=37))
        remembered.append(await store.changes(after=after, count=37, known=memory.known))
        after = plain[-1][-1].sequence
        # Announce the batch before reading the next, as the publisher does.
        publishing.batch(remembered[-1])
    assert [c.previous for batch in remembered for c in batch] == [
        c.previous for batch in plain for c in batch
    ]

    memory = SeatMemory()
    with_memory = _published(remembered, memory)
    without = _published(plain, None)
    assert with_memory == without
    # Corrections were compared with their seats' earlier results: amended or retracted
    # alerts came out, so the memory was used, not bypassed.
    alert_types = {
        orjson.loads(o.value)["type"]
        for _, outputs in without
        for o in outputs
        if o.topic == "alerts"
    }
    assert {"amended", "retracted"} & alert_types, alert_types
    # One snapshot per batch, after its last seat change.
    snapshots = [o for _, outputs in without for o in outputs if o.topic == "state"]
    assert len(snapshots) == len(plain)
    assert orjson.loads(snapshots[-1].value)["sequence"] == count
