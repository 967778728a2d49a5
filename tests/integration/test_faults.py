"""Nothing stops the count: workers killed, a broker restarted, Redis lost, a worker gone.

Every test replays the clean 2024 night and ends where the official result is, with each
alert of the clean night on the alerts topic exactly once. Faults land mid-flight: while
declarations are still arriving, with applied offsets not yet committed and outputs queued
in Redis but not yet on Kafka. Kill points are seeded, so a run is repeatable.
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from scripts.night_builder import Night
from scripts.replay import build_outgoing
from scripts.worker_process import WorkerProcess
from streams.settings import get_settings
from streams.store.keys import SEAT, election_namespace
from tests.integration.isolated import IsolatedKafka, IsolatedRedis
from tests.integration.pipeline import (
    DATA_DIR,
    ELECTION_ID,
    PARTITIONS,
    PacedReplay,
    Pipeline,
    Progress,
    assert_alerts_of_the_clean_night,
    assert_official_result,
    assert_published_once,
    assigned_partitions,
    clean_night_alert_ids,
    named_pipeline,
    new_pipeline,
)
from tests.integration.service_choice import require_own

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KILLS = 5
KILL_SEED = 20240704


@pytest.fixture(scope="module")
def expected_alert_ids() -> list[str]:
    return clean_night_alert_ids()


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[IsolatedKafka]:
    require_own(get_settings(), "a Kafka broker", kafka=True)
    kafka = IsolatedKafka(tmp_path / "kafka-run")
    kafka.start()
    yield kafka
    kafka.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[IsolatedRedis]:
    require_own(get_settings(), "a redis-server", redis=True)
    redis = IsolatedRedis(tmp_path / "redis-run")
    redis.start()
    yield redis
    redis.stop()


def alive(worker: WorkerProcess) -> Callable[[], None]:
    def check() -> None:
        assert worker.process is not None and worker.process.poll() is None, (
            f"worker exited ({worker.process and worker.process.returncode}):\n{worker.tail()}"
        )

    return check


def test_five_kill_9s_at_seeded_points_of_the_night_lose_and_repeat_nothing(
    pipeline: Pipeline, night: Night, expected_alert_ids: list[str]
) -> None:
    # Where each kill lands: a seeded number of seats after the one before (so the restarted
    # worker has made progress), then at once when outputs are seen queued in Redis but not
    # yet marked as on Kafka (within 3 s; else anyway).
    rng = random.Random(KILL_SEED)
    steps = [rng.randint(20, 90) for _ in range(KILLS)]
    kills: list[Progress] = []
    back_in: list[float] = []  # seconds from a kill to the restarted worker's Ready
    # Ten seats a second: each restarted worker takes about 10 s to be ready, and the seats
    # sent meanwhile are its catch-up. At twenty a second five catch-ups reached the end of
    # the night, and the fifth kill found every seat tallied.
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=10, pause_s=1.0)
    worker = pipeline.worker("kill-0").start()
    try:
        worker.wait_for_log("Ready", timeout=120)
        replay.start()
        seats = 0
        for n, step in enumerate(steps, start=1):
            pipeline.wait_for_seats(seats + step, worker_alive=alive(worker))
            pipeline.wait_for_outbox_backlog(timeout=3.0)
            worker.kill()
            killed_at = time.monotonic()
            kills.append(pipeline.progress())
            seats = kills[-1].seats
            worker = pipeline.worker(f"kill-{n}").start()
            worker.wait_for_log("Ready", timeout=120)
            back_in.append(time.monotonic() - killed_at)
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
    finally:
        worker.stop()
    for n, (step, at, back) in enumerate(zip(steps, kills, back_in, strict=True), start=1):
        print(
            f"kill {n}: at {at.seats} seats (step {step}), {at.uncommitted} applied but "
            f"uncommitted, {at.outbox_backlog} outputs queued but not marked on Kafka; "
            f"restarted worker ready after {back:.1f}s"
        )
    assert len(kills) == KILLS
    # Mid-flight: the night not yet tallied, and work the crash cut short on one side or other.
    assert all(at.seats < 650 for at in kills)
    assert any(at.uncommitted for at in kills), "no kill between Redis apply and Kafka commit"
    assert any(at.outbox_backlog for at in kills), "no kill between the outbox and Kafka"
    assert_official_result(pipeline, night)
    alerts = assert_published_once(pipeline)
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)
    results = pipeline.read("results")
    assert sorted(Counter(key for key, _, _ in results).values()) == [1] * 650


def test_a_broker_restart_mid_night_is_ridden_out_by_the_same_worker(
    own_kafka: IsolatedKafka,
    redis_url: str,
    redis_prefix: str,
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    pipeline = named_pipeline(own_kafka.bootstrap, redis_url, redis_prefix)
    feed = build_outgoing(DATA_DIR)
    half = len(feed) // 2
    with pipeline.worker("broker-restart") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(feed[:half])
        pipeline.wait_for_seats(120, worker_alive=alive(worker))
        own_kafka.kill()
        before = pipeline.progress(committed=False)
        time.sleep(2)  # the worker meets a dead broker: connections refused, sends pending
        restart_s = own_kafka.start()
        # The feed's own producer is outside the processor: it resumes once the broker is
        # back (the replay's producer gives up after 10 s without a broker).
        pipeline.send(feed[half:])
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        alive(worker)()  # the same process throughout: it reconnected by itself
    print(
        f"broker killed at {before.seats} seats with {before.outbox_backlog} outputs not on "
        f"Kafka; back after {restart_s:.1f}s"
    )
    assert before.seats < half
    assert_official_result(pipeline, night)
    alerts = assert_published_once(pipeline)
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)
    results = pipeline.read("results")
    assert sorted(Counter(key for key, _, _ in results).values()) == [1] * 650
    # The input topic, created on this broker by the worker, keeps the whole night and has
    # all its partitions (not the one a broker's auto-creation gives).
    admin = KafkaAdminClient(bootstrap_servers=own_kafka.bootstrap)
    try:
        for name in ("declarations",):
            topic = pipeline.topics[name]
            [description] = admin.describe_topics([topic])
            assert len(description["partitions"]) == PARTITIONS, name
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            assert configs["topic"][topic]["retention.ms"]["value"] == "-1", name
    finally:
        admin.close()


@pytest.mark.parametrize("files_lost", [True, False], ids=["empty", "from-its-aof"])
def test_redis_lost_mid_night_is_rebuilt_from_kafka_by_the_running_worker(
    files_lost: bool,
    own_redis: IsolatedRedis,
    kafka_bootstrap: str,
    redis_prefix: str,
    unique_topic: Callable[..., str],
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    """Redis killed mid-night and restarted empty, or from its append-only file (which may
    be up to a second behind what Kafka counts as done): the running worker rebuilds when
    the state is missing or has lost writes, and the night ends exact either way."""
    pipeline = new_pipeline(kafka_bootstrap, own_redis.url, redis_prefix, unique_topic)
    feed = build_outgoing(DATA_DIR)
    half = len(feed) // 2
    with pipeline.worker("redis-loss") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(feed[:half])
        pipeline.wait_for_seats(200, worker_alive=alive(worker))
        # Some outputs on Kafka already (they must not be sent again), more still to come.
        deadline = time.monotonic() + 60
        while pipeline.progress(committed=False).published < 100:
            assert time.monotonic() < deadline, "the publisher sent nothing"
            time.sleep(0.02)
        before = pipeline.progress()
        own_redis.crash(lose_files=files_lost)
        pipeline.send(feed[half:])
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        if files_lost:
            worker.wait_for_log("rebuilt parl.2024-07-04 from", timeout=30)
        alive(worker)()
        assert_history_served(pipeline, worker)
    rebuilt = [line for line in worker.log().splitlines() if "rebuilt parl.2024-07-04" in line]
    print(
        f"Redis crashed (files {'lost' if files_lost else 'kept'}) at {before.seats} seats, "
        f"{before.outbox_backlog} outputs not on Kafka; {rebuilt or 'no rebuild needed'}"
    )
    assert before.seats < half
    marker = pipeline.state_marker()
    assert marker is not None
    if files_lost:
        assert marker["how"] == "rebuilt"
    assert_official_result(pipeline, night)
    alerts = [orjson.loads(value) for _, value, _ in pipeline.read("alerts")]
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)
    if marker["how"] == "rebuilt":
        assert_alerts_across_a_loss(pipeline)
    else:
        assert_published_once(pipeline)
    results = pipeline.read("results")
    assert sorted(Counter(key for key, _, _ in results).values()) == [1] * 650
    snapshots = [orjson.loads(value) for _, value, _ in pipeline.read("state")]
    sequences = [snapshot["sequence"] for snapshot in snapshots]
    assert sequences == sorted(set(sequences)), "a snapshot went back or repeated"
    assert snapshots[-1]["seats_declared"] == 650


def assert_alerts_across_a_loss(pipeline: Pipeline) -> list[dict[str, object]]:
    """Each alert once on Kafka across the loss, and once in the rebuilt outbox: the ones sent
    before it are put back from Kafka, not queued again."""
    alerts = [orjson.loads(value) for _, value, _ in pipeline.read("alerts")]
    ids = [str(alert["alert_id"]) for alert in alerts]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates, f"alerts published twice: {duplicates}"
    assert sorted(pipeline.outbox_alert_ids()) == sorted(ids)
    return alerts


def test_the_rebuild_command_remakes_the_night_and_sends_nothing_again(
    own_redis: IsolatedRedis,
    kafka_bootstrap: str,
    redis_prefix: str,
    unique_topic: Callable[..., str],
    night: Night,
    expected_alert_ids: list[str],
) -> None:
    pipeline = new_pipeline(kafka_bootstrap, own_redis.url, redis_prefix, unique_topic)
    with pipeline.worker("before-loss") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(build_outgoing(DATA_DIR))
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
    alerts_before = len(pipeline.read("alerts"))
    newsroom_before = len(pipeline.read("newsroom"))  # the exit-poll tracking's alerts
    assert newsroom_before
    own_redis.lose()
    assert pipeline.state(night.register).seats_declared == 0

    command = [sys.executable, "-m", "scripts.rebuild", "--election", ELECTION_ID]
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **pipeline.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    print(done.stdout.strip())
    assert done.stdout.startswith(
        f"rebuilt {ELECTION_ID} from 651 messages of {pipeline.topics['declarations']} "
    )
    assert "650 applied" in done.stdout and "1 exit_poll_applied" in done.stdout
    assert_official_result(pipeline, night)

    # A worker started on the rebuilt state announces every change again, and queues nothing:
    # every result, snapshot and alert of the night is already on Kafka.
    with pipeline.worker("after-rebuild") as worker:
        worker.wait_for_log("Ready", timeout=120)
        deadline = time.monotonic() + 60
        while pipeline.announced() < pipeline.state(night.register).sequence:
            alive(worker)()
            assert time.monotonic() < deadline, "the publisher did not announce the night"
            time.sleep(0.2)
        time.sleep(1)  # a drain would follow the announce within a tick
        assert_history_served(pipeline, worker)
    # The outbox is the history put back from Kafka, and nothing was queued after it.
    assert pipeline.progress().queued == newest_sequence_on_kafka(pipeline)
    alerts = [orjson.loads(value) for _, value, _ in pipeline.read("alerts")]
    assert len(alerts) == alerts_before
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)
    assert len(pipeline.read("newsroom")) == newsroom_before
    assert len(pipeline.read("results")) == 650


def test_two_workers_one_killed_the_survivor_takes_every_partition(
    pipeline: Pipeline, night: Night, expected_alert_ids: list[str]
) -> None:
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=40, pause_s=0.5)
    with pipeline.worker("survivor") as survivor, pipeline.worker("victim") as victim:
        survivor.wait_for_log("Ready", timeout=120)
        victim.wait_for_log("Ready", timeout=120)
        declarations = pipeline.topics["declarations"]
        # Both hold partitions before the kill (a rebalance may still be settling: wait).
        deadline = time.monotonic() + 60
        while not assigned_partitions(victim.log(), declarations):
            assert time.monotonic() < deadline, victim.tail()
            time.sleep(0.2)
        replay.start()
        pipeline.wait_for_seats(150, worker_alive=alive(victim))
        victim.kill()
        at_kill = pipeline.progress()
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(survivor))
        survivor_log = survivor.log()
    print(f"victim killed at {at_kill.seats} seats; survivor's assignment:")
    survivor_has = assigned_partitions(survivor_log, pipeline.topics["declarations"])
    print(survivor_has)
    assert at_kill.seats < 650
    assert survivor_has == "{0-3}"
    assert_official_result(pipeline, night)
    alerts = assert_published_once(pipeline)
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)


def test_the_admin_rebuild_endpoint_remakes_the_state_in_a_running_worker(
    pipeline: Pipeline, night: Night, expected_alert_ids: list[str]
) -> None:
    token = "test-admin-token"
    env = {**pipeline.env(), "ELECTION_ADMIN_TOKEN": token}
    with WorkerProcess("streams.worker:app", env, name="admin-rebuild") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send(build_outgoing(DATA_DIR))
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        url = worker.base_url + "/api/admin/rebuild"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60)
        assert refused.value.code == 401
        request = urllib.request.Request(
            url, method="POST", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = orjson.loads(response.read())
        print(f"POST /api/admin/rebuild: {answer}")
        assert answer["messages"] == 651
        assert answer["outcomes"] == {"applied": 650, "exit_poll_applied": 1}
        # The publisher announces the rebuilt change log again and queues nothing new.
        deadline = time.monotonic() + 60
        while pipeline.announced() < pipeline.state(night.register).sequence:
            alive(worker)()
            assert time.monotonic() < deadline, "the publisher did not announce the night"
            time.sleep(0.2)
        time.sleep(1)
        assert_history_served(pipeline, worker)
    marker = pipeline.state_marker()
    assert marker is not None and marker["how"] == "rebuilt"
    # The outbox is the history put back from Kafka, and nothing was queued after it.
    assert pipeline.progress().queued == newest_sequence_on_kafka(pipeline)
    assert_official_result(pipeline, night)
    alerts = [orjson.loads(value) for _, value, _ in pipeline.read("alerts")]
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)


def test_a_failure_the_agent_does_not_expect_ends_the_worker_loudly(pipeline: Pipeline) -> None:
    """A step Redis refuses for a reason no retry mends (here a seat's stored contribution
    made unreadable by hand) stops the worker with the reason in its log, rather than leaving
    a worker that answers health checks while its agent no longer tallies."""
    first = next(message for message in build_outgoing(DATA_DIR) if message.kind == "result")
    body = orjson.loads(first.value)
    with pipeline.worker("agent-failure") as worker:
        worker.wait_for_log("Ready", timeout=120)
        pipeline.send([first])
        pipeline.wait_for_seats(1, worker_alive=alive(worker))
        seat = election_namespace(pipeline.prefix, ELECTION_ID) + SEAT + body["constituency_id"]
        client = redis.Redis.from_url(pipeline.redis_url)
        try:
            assert client.hset(seat, "contribution", "{not json") == 0  # the field was there
        finally:
            client.close()
        correction = replace(first, value=orjson.dumps({**body, "revision": body["revision"] + 1}))
        pipeline.send([correction])
        assert worker.process is not None
        try:
            returncode = worker.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker carried on:\n{worker.tail()}") from None
        log = worker.log()
    assert returncode != 0
    assert "TallyStoreError" in log
    assert f"contribution of {body['constituency_id']} cannot be read" in log


def alert_events(base_url: str, after: int, expected: int, quiet_s: float = 2.0) -> list[str]:
    """The alert ids a client resuming from `after` receives: until `expected` have come, then
    whatever else comes in the next `quiet_s` (nothing, if none is sent twice)."""
    address = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    ids: list[str] = []
    deadline = time.monotonic() + 60
    try:
        # A newsroom client: the night replayed is a rehearsal, whose alerts it asks for.
        connection.request(
            "GET", "/api/alerts/events?rehearsal=1", headers={"Last-Event-ID": str(after)}
        )
        response = connection.getresponse()
        assert response.status == 200
        while time.monotonic() < deadline:
            if len(ids) >= expected and connection.sock is not None:
                connection.sock.settimeout(quiet_s)
            try:
                line = response.readline()
            except TimeoutError:
                break
            if not line:
                break
            if line.startswith(b"data: "):
                ids.append(str(orjson.loads(line[6:])["alert_id"]))
    finally:
        connection.close()
    return ids


def newest_sequence_on_kafka(pipeline: Pipeline) -> int:
    return max(
        int(headers["outbox-seq"])
        for topic in ("results", "state", "alerts", "newsroom")
        for _, _, headers in pipeline.read(topic)
    )


def assert_history_served(pipeline: Pipeline, worker: WorkerProcess) -> None:
    """What the worker serves is the whole night on the alerts topic: `/api/alerts` has every
    alert once, and a client resuming from an earlier id gets each alert it missed, once, in
    outbox order (the ids it resumes from are the ones it was given before)."""
    on_kafka = sorted(
        (int(headers["outbox-seq"]), headers["outbox-epoch"], str(orjson.loads(value)["alert_id"]))
        for _, value, headers in pipeline.read("alerts")
    )
    assert len({epoch for _, epoch, _ in on_kafka}) == 1, "the outbox's epoch changed"
    with urllib.request.urlopen(
        worker.base_url + "/api/alerts?rehearsal=1", timeout=30
    ) as response:
        served = [str(alert["alert_id"]) for alert in orjson.loads(response.read())]
    assert sorted(served) == sorted(alert_id for _, _, alert_id in on_kafka)
    for after in (0, on_kafka[len(on_kafka) // 3][0], on_kafka[-2][0]):
        missed = [alert_id for seq, _, alert_id in on_kafka if seq > after]
        assert alert_events(worker.base_url, after, len(missed)) == missed, f"after {after}"


def wait_for_children(worker: WorkerProcess, count: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(children := worker.publishers()) != count:
        assert time.monotonic() < deadline, f"{len(children)} publisher processes, not {count}"
        time.sleep(0.1)
    return children


def test_a_publisher_process_killed_mid_night_is_replaced_and_dies_with_its_worker(
    pipeline: Pipeline, night: Night, expected_alert_ids: list[str]
) -> None:
    replay = PacedReplay(pipeline, build_outgoing(DATA_DIR), chunk=20, pause_s=1.0)
    worker = pipeline.worker("publisher-kill").start()
    try:
        worker.wait_for_log("Ready", timeout=120)
        [first] = wait_for_children(worker, 1)
        replay.start()
        pipeline.wait_for_seats(150, worker_alive=alive(worker))
        pipeline.wait_for_outbox_backlog(timeout=3.0)
        os.kill(first, 9)
        killed_at = pipeline.progress()
        replay.finish()
        pipeline.wait_until_published(night.register, worker_alive=alive(worker))
        [second] = wait_for_children(worker, 1)
        # A kill -9 of the worker takes its publisher with it, as when they were one process.
        worker.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{second}").exists() and (
            Path(f"/proc/{second}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        ):
            assert time.monotonic() < deadline, "the publisher outlived its worker"
            time.sleep(0.1)
    finally:
        worker.stop()
    print(
        f"publisher {first} killed at {killed_at.seats} seats, {killed_at.outbox_backlog} "
        f"outputs queued but not marked on Kafka; publisher {second} finished the night"
    )
    assert second != first
    assert f"the publisher process {first} ended with exit code -9; starting another" in (
        worker.log()
    )
    assert_official_result(pipeline, night)
    alerts = assert_published_once(pipeline)
    assert_alerts_of_the_clean_night(alerts, expected_alert_ids)
    results = pipeline.read("results")
    assert sorted(Counter(key for key, _, _ in results).values()) == [1] * 650
