"""Publisher: turns applied changes into results, snapshots and alerts, each on Kafka once."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.alert import Alert
from schemas.exit_poll import ExitPoll
from schemas.results import SeatResult
from streams.connections import kafka_client_options
from streams.pipeline.context import ElectionApp, WorkerContext
from streams.rules import alerts as alert_rules
from streams.rules.alerts import AlertPolicy
from streams.rules.alerts.base import baseline_of, in_order
from streams.rules.alerts.story import (
    NightStory,
    StoryStep,
    slot_from_text,
    slot_text,
    told_from_text,
    told_text,
)
from streams.rules.event_time import (
    EARLIEST,
    EventKey,
    PartitionProgress,
    PartitionStalls,
    watermark,
)
from streams.rules.holds import NO_HOLDS, HoldPolicy, hold_conditions
from streams.rules.projection import (
    Projecting,
    Projection,
    RunningProjection,
    declared_seat,
    seat_projection,
)
from streams.rules.reference import Register
from streams.rules.sources import (
    DEFAULT_SOURCE_RULES,
    SourceRules,
    conflict_message,
    conflict_turns,
)
from streams.rules.tally import RunningTotals, state_of_parties
from streams.rules.watchlist import Watchlist, load_watchlist
from streams.store.outbox import (
    OUTBOX_EPOCH_HEADER,
    OUTBOX_SEQ_HEADER,
    Output,
    QueuedOutput,
    conflict_output_id,
    hold_text,
    result_output_id,
)
from streams.store.rebuild import REDIS_UNAVAILABLE, rebuild_now, state_present
from streams.store.tally_store import Change

log = logging.getLogger(__name__)

LOCK_TTL_MS = 10_000
TICK_S = 0.1  # the publisher's timer: lock renewal, and taking over from a stopped leader
HOLD_TICK_S = 0.01  # how soon to look at the watermark again while moments wait for it
RESYNC_WINDOW = 2_000


@dataclass
class Telling:
    """What the leading publisher holds in memory of the night since it took the lead.

    Every change is told as it is read (its result, its seat's alerts, the state after it);
    the national moments wait in `story` until the watermark passes them.
    """

    story: NightStory
    running: RunningTotals = field(default_factory=RunningTotals)
    # Seat changes told but not yet in the story, in event-time order: a backlog read from
    # several partitions arrives out of order, and a step put in before others makes the story
    # walk the night again from there; these go in once no partition can come before them.
    inbox: list[StoryStep] = field(default_factory=list)
    read_upto: int = 0  # the last change read from the log and told
    # How far the partitions were applied, and the log's last change then, while the changes
    # up to it are still being read: the story takes them in before any moment is told.
    catching_up: tuple[dict[int, PartitionProgress], int] | None = None
    told: int = 0  # how many changes were told: the snapshots' sequence
    as_of: dt.datetime | None = None  # the latest declaration time told
    # What the projection needs, when the night is projected: each seat's latest result and
    # the exit poll it is set beside.
    projecting: Projecting | None = None
    exit_poll: ExitPoll | None = None
    # Each seat's latest result as the projection reads it, kept as arrays between snapshots.
    projected: RunningProjection | None = field(init=False, default=None)
    # The last projection made with its range, and the declaration time it was asked at.
    ranged: Projection | None = None
    ranged_as_of: dt.datetime | None = None
    # A fresh range being made on a thread of its own (range_apart), asked at ranged_as_of.
    ranging: Future[Projection | None] | None = None

    def __post_init__(self) -> None:
        if self.projecting is not None:
            self.projected = RunningProjection(self.projecting)

    def take(self, change: Change) -> None:
        """Count a change as told: the totals, the clock and, for a seat, the inbox."""
        self.told += 1
        self.read_upto = change.sequence
        result = change.result
        if result is None:
            if change.exit_poll is not None:
                self.exit_poll = change.exit_poll
                self.story.set_exit_poll(change.exit_poll)
            return
        # The seat as the projection reads it: for the snapshot's projection, and for the
        # story's, which tracks it against the exit poll step by step.
        seat = None
        if self.projecting is not None or self.story.tracking is not None:
            seat = declared_seat(result)
        if self.projected is not None and seat is not None:
            self.projected.put(seat)
        self.running.apply(change.delta)
        if self.as_of is None or result.declared_at > self.as_of:
            self.as_of = result.declared_at
        bisect.insort(
            self.inbox,
            StoryStep.of_change(change.key, change.sequence, change.delta, change.sent_ms, seat),
            key=lambda step: step.key,
        )


def snapshot_output(telling: Telling, register: Register, last_seat: SeatResult) -> Output:
    snapshot = state_of_parties(
        telling.running.totals,
        register,
        telling.told,
        telling.as_of,
        last_seat.constituency_id,
        # The worker takes only its own mode's declarations, so the seat's flag is its mode.
        rehearsal=last_seat.rehearsal,
    )
    projected = telling.projected
    if projected is not None:
        # Once per snapshot, as the snapshot itself: a run of changes read together is
        # projected once, after its last change.
        made = projection_now(telling, projected)
        projection = seat_projection(made, telling.exit_poll, telling.as_of)
        snapshot = snapshot.model_copy(update={"projection": projection})
    return Output(
        output_id=f"state:{telling.told}",
        topic="state",
        key=register.election_id,
        value=snapshot.model_dump_json().encode(),
    )


def projection_now(telling: Telling, projected: RunningProjection) -> Projection | None:
    """The projection for the snapshot after the changes told: fresh central figures, and a
    range made afresh once enough of the night has passed since the last
    (ELECTION_PROJECTION_RANGE_EVERY_S).

    The first range is made here; later ones on a thread of their own (at 10,000 seats one
    takes tens of milliseconds, which every alert behind it would wait for), taken in halfway
    to the next. Until then each snapshot carries the last range, widened to include its
    central figures.
    """
    projecting, now = projected.projecting, telling.as_of
    if telling.ranging is not None and projecting.range_ready(telling.ranged_as_of, now):
        telling.ranged = telling.ranging.result() or telling.ranged
        telling.ranging = None
    if telling.ranging is None and projecting.range_due(telling.ranged_as_of, now):
        if telling.ranged is None or not projecting.range_every:
            made = projected.projection()
            if made is not None:
                telling.ranged, telling.ranged_as_of = made, now
            return made
        telling.ranging, telling.ranged_as_of = range_apart(projected.copy()), now
    return projected.projection(range_from=telling.ranged)


def range_apart(seats: RunningProjection) -> Future[Projection | None]:
    """The projection of `seats` with a fresh range, made on a thread of its own: numpy lets
    go of the interpreter while it works, so the publisher goes on telling meanwhile."""
    made: Future[Projection | None] = Future()

    def make() -> None:
        try:
            made.set_result(seats.projection())
        except BaseException as error:  # handed to whoever takes the range in
            made.set_exception(error)

    threading.Thread(target=make, name="projection-range", daemon=True).start()
    return made


def result_output(change: Change) -> Output:
    assert change.result is not None
    result = change.result
    return Output(
        output_id=result_output_id(result.constituency_id, result.source, result.revision),
        topic="results",
        key=result.constituency_id,
        value=change.result_json or result.model_dump_json().encode(),
    )


def conflict_outputs(
    change: Change, register: Register, rules: SourceRules, rehearsal: bool
) -> list[Output]:
    """The newsroom's messages of the source conflicts a declaration's change opened or ended."""
    if change.view is None or change.constituency_id is None:
        return []
    turns = conflict_turns(change.views_before, change.views_after, rules)
    if not turns:
        return []
    ref = register.constituencies[change.constituency_id]
    outputs = []
    for turn in turns:
        message = conflict_message(
            turn, ref, register.election_id, change.counted, change.sequence, rehearsal
        )
        outputs.append(
            Output(
                output_id=conflict_output_id(
                    ref.ons_id, message.conflict_id, turn.resolution is not None
                ),
                topic="newsroom",
                key=ref.ons_id,
                value=message.model_dump_json().encode(),
            )
        )
    return outputs


def _alert_output(alert: Alert, holds: HoldPolicy) -> Output:
    """An alert on the alerts topic, or, for the newsroom alone, on the newsroom topic, which
    no webhook, event stream or `/api/alerts` reads; with what would hold it on the desk."""
    return Output(
        output_id=f"alert:{alert.alert_id}",
        topic="newsroom" if alert.audience == "newsroom" else "alerts",
        key=alert.alert_id,
        value=alert.model_dump_json().encode(),
        hold=hold_text(hold_conditions(alert, holds), holds.release_after_s(alert)),
    )


ResultsOf = Callable[[set[int]], Awaitable[dict[int, SeatResult]]]


def tell(
    telling: Telling,
    changes: Sequence[Change],
    register: Register,
    watchlist: Watchlist,
    policy: AlertPolicy,
    sources: SourceRules = DEFAULT_SOURCE_RULES,
    holds: HoldPolicy = NO_HOLDS,
) -> list[tuple[int, list[Output]]]:
    """Everything a run of changes publishes at once, in the order they were logged.

    Each seat change publishes its result and its seat's alerts, and goes into the night's
    story, whose national moments are told by `tell_moments` once the watermark passes them;
    the run publishes one snapshot of the state of the parties, after its last seat change.
    Graphics show the latest state, and a snapshot (votes and shares of a hundred parties)
    after every change of a fast run cost more than everything else the publisher does; when
    changes come one at a time, as on the night, each still gets its own. A declaration's
    change also tells the newsroom of the source conflicts it opened or ended; a lower-ranked
    source's (no result: nothing counted moved) tells only that.
    """
    announcements: list[tuple[int, list[Output]]] = []
    last_seat: SeatResult | None = None
    for change in changes:
        telling.take(change)
        if change.exit_poll is not None:
            alerts = alert_rules.detect_exit_poll(change.exit_poll, register, policy)
            outputs = [_alert_output(alert, holds) for alert in alerts]
            announcements.append((change.sequence, outputs))
            continue
        conflicts = conflict_outputs(change, register, sources, policy.rehearsal)
        if change.result is None:
            announcements.append((change.sequence, conflicts))
            continue
        result: SeatResult = change.result
        baseline = baseline_of(change.previous)
        alerts = alert_rules.seat_change_alerts(result, baseline, register, watchlist, policy)
        outputs = [result_output(change)] + [_alert_output(a, holds) for a in in_order(alerts)]
        announcements.append((change.sequence, outputs + conflicts))
        last_seat = result
    if last_seat is not None:
        announcements[-1][1].append(snapshot_output(telling, register, last_seat))
    return announcements


# A small inbox goes into the story whole: a step put in before a few others is cheap.
INBOX_WHOLE = 64


def into_story(telling: Telling, mark: EventKey | None) -> None:
    """Move the inbox's steps up to `mark` (None: all) into the story, in event-time order."""
    inbox = telling.inbox
    count = len(inbox)
    if mark is not None and count > INBOX_WHOLE:
        count = bisect.bisect_right(inbox, mark, key=lambda step: step.key)
    for step in inbox[:count]:
        telling.story.add(step)
    del inbox[:count]


async def tell_moments(
    telling: Telling,
    mark: EventKey | None,
    results: Mapping[int, SeatResult],
    results_of: ResultsOf,
    policy: AlertPolicy,
    holds: HoldPolicy = NO_HOLDS,
) -> tuple[list[Output], dict[str, str]]:
    """The national moments the watermark `mark` has passed, and no step still in the inbox
    comes before: their alerts, and the records of what was told for the outbox. `results`
    are the results at hand; `results_of` reads the others (a moment is often told after its
    change, once the partitions behind caught up)."""
    story = telling.story
    diff = story.tell(mark, telling.inbox[0].key if telling.inbox else None)
    if not diff:
        return [], {}
    missing = diff.sequences_needed - results.keys()
    found = dict(results)
    if missing:
        found |= await results_of(missing)
    alerts = story.alerts(diff, found, policy)
    records = {slot_text(t.moment.slot): told_text(story.told[t.moment.slot]) for t in diff.told}
    records |= {slot_text(m.now.slot): told_text(story.told[m.now.slot]) for m in diff.moved}
    records |= {slot_text(w.slot): "" for w in diff.withdrawn}
    return [_alert_output(alert, holds) for alert in alerts], records


class Publisher:
    """The one publisher of an election: whoever holds the Redis lock announces and drains."""

    def __init__(self, context: WorkerContext) -> None:
        settings = context.settings
        self.settings = settings
        self.register = context.register
        self.token = uuid.uuid4().hex
        self.redis = context.redis
        self.ns = context.namespace
        self.outbox = context.outbox
        self.lease = context.outbox.lease(self.token, LOCK_TTL_MS)
        self.store = context.store
        self.topics = settings.output_topics()
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None  # asks the broker where logs end
        self.declaration_partitions: set[int] = set()
        self.leading = False
        self.telling: Telling | None = None  # the night as told, while this one leads
        self.watchlist = load_watchlist(settings.watchlist_path())
        self.policy = settings.alert_policy()
        self.holds = settings.hold_policy()
        self.sources = settings.source_rules()
        self.projecting = context.projecting
        self.tracking = settings.exit_poll_tracking(self.projecting)
        self.epoch = ""
        self.on_kafka: set[int] = set()  # outbox entries past the cursor found on Kafka
        self.announced = 0  # the newest change read, as far as this publisher knows
        self.stalls = PartitionStalls(settings.event_time_stall_s)

    def stand_down(self) -> None:
        self.leading = False
        self.telling = None

    @property
    def holding(self) -> bool:
        return bool(self.telling and (self.telling.inbox or self.telling.story.pending))

    async def tick(self) -> None:
        if not await state_present(self.redis, self.ns):
            # Redis lost the state, or a rebuild is under way: nothing may be announced from
            # a half-built change log, and what this publisher remembers belongs to the old one.
            self.stand_down()
            return
        if not await self.lease.acquire():
            self.stand_down()
            return
        if not self.leading:
            # Just became the publisher: what reached Kafka before a crash is the truth.
            await self._start_clients()
            self.epoch = await self.outbox.epoch()
            try:
                await self._resync_from_kafka()
            except OutboxLostWrites as lost:
                # A Redis failover can lose its last writes: if those were only the outbox's,
                # no tally offset shows it, and going on would send some outputs twice and
                # skip others. The rebuild re-makes the state and the outbox from Kafka.
                log.error("%s; rebuilding the state from Kafka", lost)
                await rebuild_now(self.store, self.settings, self.register)
                return
            self.telling = None
            self.leading = True
        try:
            if self.telling is None:
                self.telling = await self._recall()
            fresh = await self._announce(self.telling)
            await self._drain(fresh)
        except Exception:
            # Never let a broker or Redis hiccup kill the worker: what was not marked
            # published is sent again after a resync, which skips what Kafka already has.
            log.exception("publisher failed; will resync from Kafka and retry")
            self.stand_down()

    async def _start_clients(self) -> None:
        # Kept only once started: a client whose start failed (no broker yet) never runs its
        # metadata task, and a later call waiting on its metadata would wait for ever.
        if self.producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                **kafka_client_options(self.settings),
                acks="all",
                enable_idempotence=True,
                linger_ms=1,  # alerts go out within a millisecond or two of the tally
            )
            await _started(producer)
            self.producer = producer
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                **kafka_client_options(self.settings),
                enable_auto_commit=False,
            )
            await _started(consumer)
            self.consumer = consumer

    async def stop(self) -> None:
        self.stand_down()  # ends the timer's follow loop before the clients go
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
        await self.lease.release()

    async def wait_for_change(self, timeout_s: float) -> bool:
        """Block until the change log has an entry past what was read, or the timeout."""
        if timeout_s <= 0:
            return False
        return await self.store.wait_for_change(self.announced, int(timeout_s * 1000))

    async def _recall(self) -> Telling:
        """The night as told before this publisher took the lead: every change up to the
        cursor, told again to memory (sending nothing), and what was told of the moments."""
        cursor = await self.outbox.announced()
        told = {
            slot_from_text(slot): told_from_text(record)
            for slot, record in (await self.outbox.moments_told()).items()
        }
        telling = Telling(
            NightStory(self.register, told, self.tracking), projecting=self.projecting
        )
        while telling.read_upto < cursor:
            batch = await self.store.changes(after=telling.read_upto, count=5_000)
            batch = [change for change in batch if change.sequence <= cursor]
            if not batch:
                break
            for change in batch:
                telling.take(change)
        into_story(telling, None)
        log.info("publisher recalled %d changes told", telling.told)
        return telling

    async def _announce(self, telling: Telling) -> list[QueuedOutput]:
        """Queue the outputs of the changes not yet told, and of the national moments the
        watermark has passed; returns what was queued."""
        changes = await self.store.changes(after=telling.read_upto, count=self.settings.batch_size)
        announcements = tell(
            telling, changes, self.register, self.watchlist, self.policy, self.sources, self.holds
        )
        moments: list[Output] = []
        records: dict[str, str] = {}
        if telling.inbox or telling.story.pending:
            # How far the partitions were applied first, then the log up to that point: a
            # change applied in between must not be missing from the story the watermark
            # lets through. Behind a backlog that point is read over several ticks, at most
            # ELECTION_ANNOUNCE_MAX_CHANGES a tick: announced in one script, a backlog of tens of
            # thousands of changes held Redis for seconds (every tally and view waited).
            most = self.settings.announce_max_changes
            if telling.catching_up is None:
                telling.catching_up = await self.store.partitions_read(
                    self.settings.topic_declarations
                )
            read, last = telling.catching_up
            while telling.read_upto < last and len(changes) < most:
                more = await self.store.changes(
                    after=telling.read_upto, count=self.settings.batch_size
                )
                if not more:
                    last = telling.read_upto
                    break
                changes += more
                announcements += tell(
                    telling,
                    more,
                    self.register,
                    self.watchlist,
                    self.policy,
                    self.sources,
                    self.holds,
                )
            if telling.read_upto >= last:
                telling.catching_up = None
                # What the workers' own records allow, without asking the broker: enough to
                # keep the story in order, not to tell a moment.
                into_story(telling, watermark(read.values()))
                if telling.story.pending:
                    mark = await self._watermark(telling.story, read)
                    results = {c.sequence: c.result for c in changes if c.result is not None}
                    moments, records = await tell_moments(
                        telling, mark, results, self._results_of, self.policy, self.holds
                    )
        self.announced = telling.read_upto
        if moments:
            if announcements:
                announcements[-1][1].extend(moments)
            else:
                announcements.append((0, moments))
        # One round trip for the batch of changes, as on the tally side.
        queued, stale = await self.outbox.announce_many(announcements, records)
        if stale:
            raise RuntimeError("another publisher announced some of these changes")
        return queued

    async def _watermark(
        self, story: NightStory, read: dict[int, PartitionProgress]
    ) -> EventKey | None:
        """How far the moments can be told, given how far each partition was applied when
        the story was last read: None when nothing holds them back."""
        topic = self.settings.topic_declarations
        due = story.untold()
        if not due:
            return None  # only withdrawals, which are told at once
        newest = due[-1].step
        if not self.declaration_partitions or not self.declaration_partitions >= read.keys():
            self.declaration_partitions = await self._partitions(topic)
        partitions = self.declaration_partitions
        if not partitions:
            # The broker does not list the topic yet (a broker just started): every partition
            # is unknown, and an unknown partition could hold anything.
            return EARLIEST
        if partitions >= read.keys():
            clocks = [read[p].clock if p in read else None for p in partitions]
            # Every partition has read past the newest moment due: nothing can come before
            # it now without having been sent late, and the broker need not be asked.
            if all(clock is not None and clock >= newest.key for clock in clocks):
                return None
        # Only messages sent up to the newest moment's can come before it in a clean feed: a
        # partition whose messages sent by then are all applied holds nothing back, however
        # many were sent since (at 100 a second there always are some). Only the broker can
        # say where those end: the log end a worker's consumer last saw is not enough, as that
        # partition's last fetch may have come before a message sent ahead of the moment's.
        sent = max(moment.step.sent_ms for moment in due)
        bounds = await self._bounds(topic, sent + 1 if sent else None)
        progress = {
            partition: PartitionProgress(
                read[partition].applied if partition in read else -1,
                bound,
                read[partition].clock if partition in read else None,
            )
            for partition, bound in bounds.items()
        }
        return watermark(self.stalls.moving(progress))

    async def _first_sent_at_or_after(
        self, topic: str, partitions: Sequence[int], sent_ms: int
    ) -> dict[int, int]:
        """Each partition's first offset of a message sent at or after `sent_ms`, where it has
        one (a partition with none has every message sent before)."""
        assert self.consumer is not None
        found = await self.consumer.offsets_for_times(
            {TopicPartition(topic, p): sent_ms for p in partitions}
        )
        return {tp.partition: at.offset for tp, at in found.items() if at is not None}

    async def _partitions(self, topic: str) -> set[int]:
        """A topic's partitions, none if it does not exist yet.

        Asked of the producer, whose metadata follows any topic asked for (the consumer's
        covers only what it is assigned), but only once the topic is listed: asking for an
        unknown topic by name has the broker create it, with one partition, before the
        worker creates it as it should be.
        """
        assert self.consumer is not None and self.producer is not None
        if topic not in await self.consumer.topics():
            return set()
        return await self.producer.partitions_for(topic)

    async def _bounds(self, topic: str, sent_before_ms: int | None) -> dict[int, int]:
        """Each partition's first offset of a message sent at or after `sent_before_ms` (a
        Kafka timestamp), or its end when it has none or no time is given."""
        assert self.consumer is not None
        partitions = [TopicPartition(topic, p) for p in sorted(self.declaration_partitions)]
        if sent_before_ms is None:
            ends = await self.consumer.end_offsets(partitions)
            return {tp.partition: offset for tp, offset in ends.items()}
        # Both at once, one round trip: a partition with no message sent since ends where it ends.
        ends, firsts = await asyncio.gather(
            self.consumer.end_offsets(partitions),
            self._first_sent_at_or_after(
                topic, sorted(self.declaration_partitions), sent_before_ms
            ),
        )
        return {tp.partition: firsts.get(tp.partition, end) for tp, end in ends.items()}

    async def _results_of(self, sequences: set[int]) -> dict[int, SeatResult]:
        changes = await self.store.changes_at(sorted(sequences))
        return {c.sequence: c.result for c in changes if c.result is not None}

    async def _drain(self, fresh: Sequence[QueuedOutput]) -> None:
        """Send what is queued and not yet on Kafka; what was just queued is sent from memory
        when it follows straight on from the published cursor, else read back from Redis."""
        assert self.producer is not None
        published = await self.outbox.published()
        if fresh and fresh[0].sequence == published + 1 and not self.on_kafka:
            await self._send(fresh)
            await self.outbox.mark_published(fresh[-1].sequence)
            return
        while True:
            queued = await self.outbox.read(after=published, count=500)
            if not queued:
                return
            await self._send([item for item in queued if item.sequence not in self.on_kafka])
            published = queued[-1].sequence
            await self.outbox.mark_published(published)
            self.on_kafka = {seq for seq in self.on_kafka if seq > published}

    async def _send(self, queued: Sequence[QueuedOutput]) -> None:
        assert self.producer is not None
        futures = []
        for item in queued:
            futures.append(
                await self.producer.send(
                    self.topics[item.output.topic],
                    key=item.output.key.encode(),
                    value=item.output.value,
                    headers=[
                        (OUTBOX_SEQ_HEADER, str(item.sequence).encode()),
                        (OUTBOX_EPOCH_HEADER, self.epoch.encode()),
                    ],
                )
            )
        await asyncio.gather(*futures)

    async def _resync_from_kafka(self) -> None:
        """Learn which outbox entries a crashed publisher already put on Kafka.

        Entries for different partitions can land out of order when a publisher dies mid-send
        (a later snapshot on Kafka, an earlier alert not), so the cursor moves only up to the
        first entry missing, and the drain skips the later ones that are there.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            **kafka_client_options(self.settings),
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await _started(consumer)
        try:
            partitions_of = {topic: await self._partitions(topic) for topic in self.topics.values()}
            present: set[int] = set()
            for topic, partitions in partitions_of.items():
                for partition in partitions:
                    present |= await _outbox_seqs(consumer, topic, partition, self.epoch)
            progress = await self.outbox.progress()
            if outbox_lost_writes(present, progress.queued):
                raise OutboxLostWrites(
                    f"Kafka holds outbox entries up to {max(present)} of this epoch, Redis "
                    f"queued only up to {progress.queued}: Redis lost writes it acknowledged"
                )
            published = newest = progress.published
            while newest + 1 in present:
                newest += 1
            self.on_kafka = {seq for seq in present if seq > newest}
            if newest > published:
                await self.outbox.mark_published(newest)
            log.info(
                "publisher resynced: outbox entries up to %d are on Kafka, and %d after them",
                newest,
                len(self.on_kafka),
            )
        finally:
            await consumer.stop()


async def _started(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Start a Kafka client, or stop what its failed start left open and raise."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


class OutboxLostWrites(RuntimeError):
    """Kafka holds outputs the outbox in Redis never queued: Redis lost acknowledged writes."""


def outbox_lost_writes(on_kafka: set[int], queued: int) -> bool:
    """Whether Kafka holds an entry of this outbox epoch past the last one Redis queued."""
    return bool(on_kafka) and max(on_kafka) > queued


async def _outbox_seqs(
    consumer: AIOKafkaConsumer, topic: str, partition: int, epoch: str
) -> set[int]:
    """The outbox sequences of this epoch among a partition's last messages.

    A window rather than only the last message, so another election or an old night sharing
    the topic cannot hide what this publisher already sent.
    """
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    consumer.seek(tp, max(end - RESYNC_WINDOW, 0))
    seqs: set[int] = set()
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=5000)
        records = batch.get(tp, [])
        if not records:
            break
        for record in records:
            headers = dict(record.headers)
            if headers.get(OUTBOX_EPOCH_HEADER, b"").decode() == epoch:
                seqs.add(int(headers.get(OUTBOX_SEQ_HEADER, b"0")))
    return seqs


def register(app: ElectionApp) -> None:
    """Run the publisher on `app`: whichever worker holds the lock leads, the others wait."""
    # Made on the first tick, not here: it loads the reference data and the watchlist.
    publisher: Publisher | None = None

    @app.timer(interval=TICK_S, name="streams.publisher.publish_outputs")
    async def publish_outputs() -> None:
        nonlocal publisher
        if publisher is None:
            publisher = Publisher(app.context)
        await follow(publisher)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def release_publisher(sender: Any, **kwargs: Any) -> None:
        if publisher is not None:
            await publisher.stop()


async def follow(publisher: Publisher) -> None:
    """Lead while the lock is held, following the change log; stand down on any failure."""
    try:
        await publisher.tick()
        # While it leads, the publisher follows the change log: a blocking read wakes it as
        # soon as a tally step appends, and a tick at least every TICK_S renews the lock. It
        # does not return to the timer, which sleeps a whole interval after every run. While
        # changes are held for the watermark, it looks again soon: partitions move on
        # (duplicates, rejections) without adding to the change log.
        while publisher.leading:
            await publisher.wait_for_change(HOLD_TICK_S if publisher.holding else TICK_S)
            await publisher.tick()
    except REDIS_UNAVAILABLE as error:
        # An exception would end this timer for good: stand down, take over afresh later.
        log.warning("publisher: Redis unavailable (%s)", error)
        publisher.stand_down()
    except Exception:
        log.exception("publisher could not take over; will try again")
        publisher.stand_down()
