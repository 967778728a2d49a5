"""The scaling run gives its workers settings they read, and topics shaped like streams/topics."""

from __future__ import annotations

from scripts.bench.scaling import _topics, key_kind, worker_env
from streams.pipeline.app import create_app
from streams.settings import ENV_PREFIX, Settings, get_settings

app = create_app(Settings())


def test_every_variable_given_to_a_worker_is_a_setting_and_changes_it() -> None:
    settings = Settings()
    topics = _topics("scale-x", settings)
    env = worker_env(settings, "scale-x", topics)
    assert set(env) <= {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    seen = Settings(**{name.removeprefix(ENV_PREFIX).lower(): value for name, value in env.items()})
    assert seen.topic_declarations == "scale-x-declarations"
    assert seen.topic_dead_letter == "scale-x-dead-letter"
    assert seen.redis_key_prefix == "scale-x:" and seen.app_id == "scale-x"
    # Every topic setting is replaced, so a run never touches the night's real topics.
    topic_fields = {name for name in Settings.model_fields if name.startswith("topic_")}
    assert {f"topic_{field}" for field in topics} == topic_fields - {
        "topic_partitions",
        "topic_replication_factor",
    }


def test_each_topic_has_the_partitions_the_app_declares_it_with() -> None:
    assert app.conf.topic_partitions == get_settings().topic_partitions
    settings = get_settings()
    declared = {topic.get_topic_name(): topic.partitions for topic in app.night_topics.all}
    for field, (_, partitions) in _topics("scale-x", settings).items():
        assert declared[getattr(settings, f"topic_{field}")] == partitions, field


def test_the_memory_split_names_each_kind_of_key() -> None:
    kinds = {
        name: key_kind(name)
        for name in ("seat:E14001063", "seats", "changes", "outbox", "outbox:ids", "totals")
    }
    assert kinds == {
        "seat:E14001063": "seats",
        "seats": "other",
        "changes": "change log",
        "outbox": "outbox",
        "outbox:ids": "outbox",
        "totals": "other",
    }
