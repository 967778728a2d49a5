"""The night on a cluster survives losing any one machine's process: a broker, the Redis primary,
a worker.

One cluster serves the module (scripts/services.py `start_cluster`: three Kafka nodes, topics
with three copies and two in sync, a Redis primary with two replicas under three Sentinels),
brought back to full strength before each test. Each test replays the clean 2024 night paced
(about half a minute), kills one process with SIGKILL once 150 seats are in, records how long
the night took to heal, and ends at the official result with every alert of the clean night
once on the alerts topic and every message counted once.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from scripts.night_builder import Night
from scripts.replay import build_outgoing
from scripts.worker_process import WorkerProcess
from streams.settings import get_settings
from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.pipeline import (
    DATA_DIR,
    PARTITIONS,
    PacedReplay,
    Pipeline,
    Progress,
    assert_alerts_of_the_clean_night,
    assert_official_result,
    assert_published_once,
    assigned_partitions,
    clean_night_alert_ids,
    new_pipeline,
    remove_keys,
)
from tests.integration.service_choice import require_own

KILL_AT_SEATS = 150
# 10 messages every half second: the night takes about 33 s, so a failure at 150 seats lands
# with some 20 s of the night still to come, longer than a broker takes to be fenced (9 s)
# or a silent worker to leave the group (ELECTION_KAFKA_SESSION_TIMEOUT_S, 10 s).
CHUNK, PAUSE_S = 10, 0.5
HEAL_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_own(get_settings(), "a Kafka cluster and Redis with Sentinels", kafka=True, redis=True)
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        print(f"cluster answering after {cluster.start():.1f}s")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def expected_alert_ids() -> list[str]:
    return clean_night_alert_ids()


@pytest.fixture
def night_on_cluster(cluster: LocalCluster) -> Iterator[Pipeline]:
    """A pipeline of the test's own on the cluster, made whole again first; its topics have
    three copies and need two in sync, as the workers would create them."""
    print(f"cluster at full strength after {cluster.heal():.1f}s")
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    created: list[str] = []

    def unique_topic(name_hint: str, partitions: int = 1) -> str:
        name = f"test-cluster-{name_hint}-{uuid.uuid4().hex[:10]}"
        settings = get_settings().model_copy(
            update={"topic_replication_factor": 3, "min_insync_replicas": 2}
        )
        admin.create_topics([NewTopic(name, partitions, 3, topic_configs=settings.topic_config())])
        created.append(name)
        return name

    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    try:
        yield new_pipeline(cluster.bootstrap, cluster.redis_url, prefix, unique_topic)
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics(created)
        admin.close()
        with contextlib.suppress(Exception):
            remove_keys(cluster.redis_url, prefix)


def worker_on(cluster: LocalCluster, pipeline: Pipeline, name: str) -> WorkerProcess:
    return WorkerProcess(
        "streams.worker:app", {**pipeline.env(), **cluster.client_settings}, name=name
    )


def alive(worker: WorkerProcess) -> Callable[[], None]:
    def check() -> None:
        assert worker.process is not None and worker.process.poll() is None, (
            f"worker exited ({worker.process and worker.process.returncode}):\n{worker.tail()}"
        )

    return check


def progress_now(pipeline: Pipeline) -> Progress | None:
    """Where the night stands, or None while Redis has no primary to ask."""
    try:
        return pipeline.progress(committed=False)
    except redis.RedisError:
        return None


def seconds_until(what: str, healed: Callable[[Progress], bool], pipeline: Pipeline) -> float:
    began = time.monotonic()
    wait_for(
        what,
        lambda: (now := progress_now(pipeline)) is not None and healed(now),
        HEAL_TIMEOUT_S,
    )
    return time.monotonic() - began


def assert_counted_once(pipeline: Pipeline, sent: int) -> None:
    """The outcome counters add up to the messages consumed, each once."""
    counters = pipeline.counters()
    rejected = sum(n for name, n in counters.items() if name.startswith("validation:rejected:"))
    assert counters["validation:accepted"] + rejected == sent == 651, counters
    assert (
        counters["tally:applied"] + counters["tally:exit_poll_applied"]
        == counters["validation:accepted"]
    ), counters


def assert_the_night_ended_whole(
    pipeline: Pipeline, night: Night, sent: int, expected_alert_ids: list[str]
) -> None:
    assert_official_result(pipeline, night)
    alerts = assert_published_once(pipeline)
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)
    assert_counted_once(pipeline, sent)
    results = pipeline.read("results")
    assert sorted(Counter(key for key, _, _ in results).values()) == [1] * 650


def test_the_broker_leading_the_declarations_partitions_is_killed_mid_night(
    cluster: LocalCluster,
    night_on_cluster: Pipeline,
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    pipeline = night_on_cluster
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=CHUNK, pause_s=PAUSE_S)
    with worker_on(cluster, pipeline, "cluster-declarations-leader") as worker:
        worker.wait_for_log("Ready", timeout=120)
        replay.start()
        pipeline.wait_for_seats(KILL_AT_SEATS, worker_alive=alive(worker))
        leaders = cluster.leaders(pipeline.topics["declarations"])
        victim = Counter(leaders.values()).most_common(1)[0][0]
        led = sorted(p for p, leader in leaders.items() if leader == victim)
        at_kill = pipeline.progress(committed=False)
        cluster.kill_kafka(victim)
        # Healed once every partition it led has a message applied past the kill: a new
        # leader elected, found by the feed's producer and by the worker's consumer.
        heal_s = seconds_until(
            "the dead broker's partitions read again",
            lambda now: all(now.applied.get(p, -1) > at_kill.applied.get(p, -1) for p in led),
            pipeline,
        )
        moved = cluster.leaders(pipeline.topics["declarations"])
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        alive(worker)()
    print(
        f"HEAL declarations leader: broker {victim} (leading partitions {led} of "
        f"{pipeline.topics['declarations']}) killed at {at_kill.seats} seats; every partition "
        f"it led applied again {heal_s:.1f}s later; leaders now {moved}"
    )
    assert at_kill.seats < 650
    assert victim not in moved.values()
    assert_the_night_ended_whole(pipeline, night, replay.sent, expected_alert_ids)


def test_the_broker_leading_the_output_topics_is_killed_mid_night(
    cluster: LocalCluster,
    night_on_cluster: Pipeline,
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    pipeline = night_on_cluster
    outputs = {name: pipeline.topics[name] for name in ("alerts", "state", "results")}
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=CHUNK, pause_s=PAUSE_S)
    with worker_on(cluster, pipeline, "cluster-outputs-leader") as worker:
        worker.wait_for_log("Ready", timeout=120)
        replay.start()
        pipeline.wait_for_seats(KILL_AT_SEATS, worker_alive=alive(worker))
        [victim] = cluster.leaders(outputs["alerts"]).values()
        led = {
            name: sorted(p for p, leader in cluster.leaders(topic).items() if leader == victim)
            for name, topic in outputs.items()
        }
        at_kill = pipeline.progress(committed=False)
        cluster.kill_kafka(victim)
        # Healed once an output queued after the kill is on Kafka: the publisher sends in
        # outbox order, so everything queued before it (alerts and snapshots, whose one
        # partition the dead broker led) is there too.
        heal_s = seconds_until(
            "an output queued after the kill on Kafka",
            lambda now: now.published > at_kill.queued,
            pipeline,
        )
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        alive(worker)()
    print(
        f"HEAL output leader: broker {victim} (leading partitions {led}) killed at "
        f"{at_kill.seats} seats with outbox {at_kill.published}/{at_kill.queued} on Kafka; "
        f"the first output queued after the kill was on Kafka {heal_s:.1f}s later"
    )
    assert at_kill.seats < 650
    assert_the_night_ended_whole(pipeline, night, replay.sent, expected_alert_ids)


def test_the_redis_primary_is_killed_mid_night_and_the_writes_it_lost_are_rebuilt(
    cluster: LocalCluster,
    night_on_cluster: Pipeline,
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    """Redis replicates asynchronously: the Sentinels promote a replica that lacks the last
    writes the primary acknowledged. The offsets recorded in Redis then lag what Kafka counts
    as done, the worker's next batch sees it and rebuilds the state from the Kafka log."""
    pipeline = night_on_cluster
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=CHUNK, pause_s=PAUSE_S)
    with worker_on(cluster, pipeline, "cluster-redis-primary") as worker:
        worker.wait_for_log("Ready", timeout=120)
        replay.start()
        pipeline.wait_for_seats(KILL_AT_SEATS, worker_alive=alive(worker))
        primary = cluster.redis_primary()
        with cluster.replicas_cut_off(primary):
            cut_off = pipeline.progress(committed=False)
            # A second of the night applied on the primary alone.
            pipeline.wait_for_seats(cut_off.seats + 15, worker_alive=alive(worker))
            at_kill = pipeline.progress(committed=False)
            cluster.kill_redis(primary)
            killed_at = time.monotonic()
        promoted_port = wait_for(
            "a replica promoted",
            lambda: (port := cluster.primary_port()) != primary.settings.redis_port and port,
            HEAL_TIMEOUT_S,
        )
        failover_s = time.monotonic() - killed_at
        # Healed once the state is rebuilt and holds at least what the dead primary held.
        rebuilt_s = failover_s + seconds_until(
            "the lost writes rebuilt",
            lambda now: (
                all(now.applied.get(p, -1) >= at for p, at in at_kill.applied.items())
                and (pipeline.state_marker() or {}).get("how") == "rebuilt"
            ),
            pipeline,
        )
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        alive(worker)()
        log = worker.log()
    # Seen by the tally agent (streams/store/rebuild.py's _lost_writes: a batch starting past
    # what Redis recorded) or, when the publisher takes the lead first, by the publisher
    # (outbox_lost_writes: Kafka holding outputs past what the outbox queued).
    lost = [
        line
        for line in log.splitlines()
        if "Redis recorded offset" in line
        or "no offset recorded for" in line
        or "Redis lost writes it acknowledged" in line
    ]
    rebuilt = [line for line in log.splitlines() if "rebuilt parl.2024-07-04 from" in line]
    print(
        f"HEAL redis primary: redis-{primary.n} killed at {at_kill.seats} seats, "
        f"{at_kill.seats - cut_off.seats} seats after its replicas last had its writes; "
        f"port {promoted_port} promoted {failover_s:.1f}s after the kill; the lost writes "
        f"rebuilt from Kafka {rebuilt_s:.1f}s after it"
    )
    print("\n".join(lost[:1] + rebuilt[:1]))
    assert lost, "the worker did not see the writes the failover lost"
    assert rebuilt, "the worker did not rebuild the state"
    assert_the_night_ended_whole(pipeline, night, replay.sent, expected_alert_ids)


def test_one_worker_of_two_is_killed_mid_night(
    cluster: LocalCluster,
    night_on_cluster: Pipeline,
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    pipeline = night_on_cluster
    declarations = pipeline.topics["declarations"]
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=CHUNK, pause_s=PAUSE_S)
    survivor = worker_on(cluster, pipeline, "cluster-survivor")
    victim = worker_on(cluster, pipeline, "cluster-victim")
    with survivor, victim:
        survivor.wait_for_log("Ready", timeout=120)
        victim.wait_for_log("Ready", timeout=120)
        wait_for(
            "both workers holding partitions",
            lambda: (
                assigned_partitions(victim.log(), declarations)
                and assigned_partitions(survivor.log(), declarations)
            ),
            60,
            0.2,
        )
        replay.start()
        pipeline.wait_for_seats(KILL_AT_SEATS, worker_alive=alive(survivor))
        victim_had = assigned_partitions(victim.log(), declarations)
        at_kill = pipeline.progress(committed=False)
        victim.kill()
        # Healed once every partition has a message applied past the kill: the victim's
        # too, after the group gave up on it and the survivor took them.
        heal_s = seconds_until(
            "every partition read again",
            lambda now: all(
                now.applied.get(p, -1) > at_kill.applied.get(p, -1) for p in range(PARTITIONS)
            ),
            pipeline,
        )
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(survivor))
        survivor_has = assigned_partitions(survivor.log(), declarations)
    print(
        f"HEAL worker: the worker holding partitions {victim_had} killed at {at_kill.seats} "
        f"seats; every partition applied again {heal_s:.1f}s later, the survivor holding "
        f"{survivor_has}"
    )
    assert at_kill.seats < 650
    assert survivor_has == "{0-3}"
    assert_the_night_ended_whole(pipeline, night, replay.sent, expected_alert_ids)
