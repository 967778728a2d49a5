"""The one settings object, read from the environment (see the README's table)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from schemas.alert import Audience
from streams.rules.alerts.base import AlertPolicy, merged_priorities
from streams.rules.alerts.tracking import Tracking
from streams.rules.holds import HoldPolicy, hold_policy
from streams.rules.projection import Baseline, Projecting
from streams.rules.reference import Register
from streams.rules.rehearsal import Mode
from streams.rules.sources import DEFAULT_SOURCE_PRECEDENCE, SourceRules, source_name
from streams.rules.validation import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_REVISION_JUMP,
    NightWindow,
)
from streams.rules.watchlist import WATCHLIST_FILE

PACKAGE_DIR = Path(__file__).resolve().parent
# The 2024 files ship inside the package, so a wheel installed anywhere has them.
DEFAULT_DATA_DIR = PACKAGE_DIR / "data" / "ge2024"
# The source checkout this package runs from (an editable install, or PYTHONPATH); None when
# it was installed from a wheel. A stray pyproject.toml in site-packages is not a checkout.
CHECKOUT: Path | None = (
    PACKAGE_DIR.parent
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file()
    and PACKAGE_DIR.parent.name not in {"site-packages", "dist-packages"}
    else None
)


def default_run_dir() -> Path:
    """The checkout's `.run` (every command finds the same services from any folder), else
    `.run` in the current folder: an installed package never writes into site-packages."""
    return (CHECKOUT or Path.cwd()) / ".run"


# Platforms inject variables of their own: Kubernetes gives every pod REDIS_PORT=tcp://...
# for a Service named redis. Our names carry this prefix so none of theirs can be taken for
# a setting.
ENV_PREFIX = "ELECTION_"
# What a Kubernetes service link looks like ({SERVICE}_PORT=tcp://10.0.0.7:6379): never a
# port of ours, whatever name it lands on.
SERVICE_LINK = re.compile(r"^(tcp|udp|sctp)://", re.IGNORECASE)

log = logging.getLogger(__name__)


class PlatformSafeEnv(EnvSettingsSource):
    """The environment, minus Kubernetes service links; unprefixed names warn (one release)."""

    def __init__(self, settings_cls: type[BaseSettings], *, legacy: bool) -> None:
        super().__init__(
            settings_cls, case_sensitive=False, env_prefix="" if legacy else ENV_PREFIX
        )
        self.legacy = legacy

    def __call__(self) -> dict[str, object]:
        values = super().__call__()
        prefix = "" if self.legacy else ENV_PREFIX
        for field in list(values):
            name = f"{prefix}{field}".upper()
            raw = self.env_vars.get(name.lower())
            if raw is not None and field.endswith("_port") and SERVICE_LINK.match(raw):
                log.warning("ignored %s=%s: a Kubernetes service link, not a setting", name, raw)
                del values[field]
            elif self.legacy and f"{ENV_PREFIX}{field}".lower() in self.env_vars:
                del values[field]  # the prefixed name wins, as it will alone next release
            elif self.legacy:
                log.warning(
                    "%s is deprecated and read for one more release: set %s%s instead",
                    name,
                    ENV_PREFIX,
                    name,
                )
        return values


class Settings(BaseSettings):
    """Everything a worker, the replay and the service helpers can be told from outside."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then ELECTION_* names, then the old unprefixed names, then files."""
        return (
            init_settings,
            PlatformSafeEnv(settings_cls, legacy=False),
            PlatformSafeEnv(settings_cls, legacy=True),
            dotenv_settings,
            file_secret_settings,
        )

    # Connections
    kafka_bootstrap_servers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    redis_url: str = Field(
        "redis://127.0.0.1:16379/0",
        description="Redis URL for the tallies; redis+sentinel://host:port,host:port/service/db "
        "asks those Sentinels for the service's primary",
    )

    # Connection security (README: Security); every client is built by streams/connections.py
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-256", description="Kafka SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
    )
    kafka_sasl_username: str = Field("", description="Kafka SASL user name")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="Kafka SASL password")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signed the brokers' certificates (default: system CAs)"
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="Client certificate (PEM) for brokers that ask for one"
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="Private key (PEM) of that certificate"
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis AUTH password, when ELECTION_REDIS_URL does not carry one"
    )
    redis_ssl_ca_file: Path | None = Field(
        None, description="CA bundle for a rediss:// (TLS) ELECTION_REDIS_URL (default: system CAs)"
    )

    # Local services started by scripts/services.py (no Docker)
    kafka_port: int = Field(19092, description="Port of the local Kafka broker")
    kafka_controller_port: int = Field(19093, description="Port of the local KRaft controller")
    kafka_heap: str = Field("512m", description="JVM heap of the local broker (-Xmx)")
    redis_port: int = Field(16379, description="Port of the local redis-server")
    kafka_sasl_port: int = Field(
        0, ge=0, description="Extra SASL_PLAINTEXT (SCRAM) listener of the local broker; 0: none"
    )
    run_dir: Path = Field(
        default_factory=default_run_dir,
        description="Data, logs and pid files of local services",
    )
    cluster_base_port: int = Field(
        19100,
        ge=1,
        le=65535 - 33,
        description="Ports of the local cluster (start --cluster) count from this: Kafka "
        "+1..+3, KRaft controllers +11..+13, Redis +21..+23, Sentinels +31..+33",
    )
    kafka_libs_dir: Path | None = Field(
        None,
        description="Jars of the local broker (shareable); default ELECTION_RUN_DIR/kafka/libs",
    )

    # The election
    election_id: str = Field(
        "parl.2024-07-04",
        description="Democracy Club election id being processed",
    )
    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Reference files of the election",
    )
    # A rehearsal unless told otherwise: a worker left at its default can never put a test
    # feed on air, and the live night is one setting said on purpose.
    mode: Mode = Field(
        "rehearsal",
        description="rehearsal or live: the only input taken (the other is dead-lettered as "
        "wrong_mode), and what every output says it is",
    )
    # The 2024 night's last seat (Inverness, Skye and West Ross-shire, after a recount) declared
    # on Saturday 6 July at about 18:00, 44 hours after polls closed: 72 leaves room for a
    # correction or a later recount, and still refuses a date typed in the wrong month.
    night_ends_hours_after_polls_close: float = Field(
        72.0,
        gt=0,
        le=24 * 366,  # at most a year, so the night's end stays a date Python can hold
        description="The night ends this long after polls close; a later declaration: dead letter",
    )
    # Clocks of feeds and brokers drift by seconds, not minutes: five minutes forgives the
    # drift and still catches a declaration dated hours ahead (07:00 typed for 05:00).
    declared_at_future_margin_s: float = Field(
        300.0,
        ge=0,
        le=366 * 86_400,
        description="A declaration dated more than this after it was sent: dead letter",
    )

    # Topics
    topic_declarations: str = Field(
        "declarations",
        description="Input: declarations, keyed by constituency",
    )
    topic_dead_letter: str = Field(
        "declarations-dead-letter",
        description="Rejected messages, with reasons",
    )
    topic_results: str = Field(
        "results",
        description="Output: one enriched result per applied revision",
    )
    topic_state: str = Field(
        "state-of-parties",
        description="Output: snapshot after each change, or each run of changes",
    )
    topic_alerts: str = Field("alerts", description="Output: alerts for newsrooms and apps")
    topic_newsroom: str = Field(
        "newsroom",
        description="Output: for the newsroom only (source conflicts, feed checks, newsroom "
        "alerts), never apps",
    )
    topic_audit: str = Field(
        "audit",
        description="Output: every state-changing action (who, what, when, before and after)",
    )
    topic_partitions: int = Field(
        4, description="Partitions of the declarations and results topics"
    )
    # One copy on one broker; a cluster of three keeps three and needs two of them for a write
    # (acks=all), so losing any one broker loses nothing and stops nothing.
    topic_replication_factor: int = Field(
        1, ge=1, description="Copies of every topic the worker, the replay and benchmarks create"
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        description="min.insync.replicas of those topics: copies a write needs before acks=all "
        "answers",
    )
    input_retention_ms: int = Field(
        -1,
        ge=-1,
        description="retention.ms of the declarations topic (-1: forever): rebuilds read it",
    )

    # Worker
    app_id: str = Field("election-night", description="Faust app id (consumer group)")
    kafka_session_timeout_s: float = Field(
        10.0, gt=0, description="A worker silent this long leaves the group; its partitions move"
    )
    web_host: str = Field("127.0.0.1", description="Address the worker's web server binds")
    web_port: int = Field(6066, description="Port of the worker's web server")
    cors_allow_origin: str = Field(
        "*", description="Access-Control-Allow-Origin for graphics clients ('' for none)"
    )
    pa_output_feed: str = Field(
        "rehearsal",
        pattern=r"^[a-z][a-z0-9-]{0,39}$",
        description="PA feed whose ids /api/pa/ writes (its mapping in data_dir/pa-feeds/)",
    )
    redis_key_prefix: str = Field("", description="Extra Redis key prefix (tests isolate with it)")
    batch_size: int = Field(200, description="Most declarations applied in one Redis round trip")
    announce_max_changes: int = Field(
        1_000,
        ge=1,
        description="Most changes the publisher reads to catch up in one announcement (one "
        "Lua script, which holds Redis while it runs); a longer backlog is told over several",
    )
    consumer_max_fetch_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024 * 1024,
        description="Most bytes a worker fetches from one partition at a time",
    )
    batch_within_s: float = Field(0.005, description="Longest wait to fill a batch, seconds")
    event_time_stall_s: float = Field(
        30.0,
        gt=0,
        description=(
            "A declarations partition with messages unread whose offset has not moved for this "
            "long stops holding the night's moments back (what it delivers later is amended); "
            "longer than a killed worker's partitions take to move "
            "(ELECTION_KAFKA_SESSION_TIMEOUT_S)"
        ),
    )
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        description="Largest declarations message (key and value) validated; larger: dead letter",
    )
    max_revision_jump: int = Field(
        DEFAULT_MAX_REVISION_JUMP,
        ge=1,
        description=(
            "Furthest a declaration's revision may go past its seat's (past 0 for a seat not yet "
            "declared); further: not applied, dead letter"
        ),
    )
    source_precedence: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SOURCE_PRECEDENCE),
        description=(
            'Whose figures count when sources disagree, first first, as JSON: ["desk", "pa", '
            '"replay"]; a source not listed comes after them (by name). Every source is kept'
        ),
    )
    source_time_tolerance_s: float = Field(
        60.0,
        ge=0,
        description="How far two sources' declaration times may differ before they disagree",
    )
    # The 2024 night queues 651 results, a snapshot per change or run of changes (at most 651)
    # and its alerts: about 1,040 entries at full speed (docs/benchmarks.md). 4,096 holds a
    # whole night at any pace, so any screen resuming during it is served from memory. A snapshot
    # frame is about 17 KB, a result 1-2 KB: a night's ring is some 15 MB. Older: from Redis.
    sse_buffer_events: int = Field(
        4096,
        ge=1,
        description="Recent outbox entries each worker keeps in memory for its event streams",
    )
    sse_write_timeout_s: float = Field(
        10.0,
        gt=0,
        description="An event stream whose write waits longer than this is closed (it resumes)",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of a bootstrap admin (bootstrap-admin on the record), beside "
        "the people's tokens of election-desk-tokens; unset: none",
    )

    # Alerts
    alert_priorities: dict[str, str] = Field(
        default_factory=dict,
        description='Priority per alert type over the defaults, as JSON: {"seat_gain": "normal"}',
    )
    desk_alert_policy: dict[str, str] = Field(
        default_factory=dict,
        description="Per alert type over the defaults (former_prime_minister_defeated and "
        'prime_minister_result held), as JSON: {"cabinet_minister_defeated": "hold:120", '
        '"prime_minister_result": "auto"}; hold waits on the desk for an editor, hold:<s> '
        "goes by itself after that many seconds",
    )
    desk_auto_release_s: float | None = Field(
        None,
        ge=0,
        description="A held alert with no time of its own goes by itself after this many "
        "seconds; 0: never (an editor sends it); unset: 20 in a rehearsal, never live",
    )
    alert_shock_majority_share: float = Field(
        0.40,
        ge=0,
        le=1,
        description="A gain is a shock when the notional 2019 majority share was at least this",
    )
    alert_narrow_margin_votes: int = Field(
        100, ge=0, description="A seat won by fewer votes than this is a narrow-margin alert"
    )
    publisher_process: bool = Field(
        True,
        description="Run the publisher (results, snapshots, alerts to Kafka) in a process of its "
        "own beside each worker, on another core than the declaration agent; false: a task in "
        "the worker",
    )
    # Python collects its youngest objects every 700 allocations by default, and each pass
    # that promotes them brings the full pass over the whole heap nearer: a worker holding
    # batches of validated declarations spent more time there than validating them.
    gc_young_threshold: int = Field(
        10_000,
        ge=0,
        description="Allocations between passes of Python's collector over the youngest "
        "objects in the worker, publisher and rebuild processes; 0: Python's own (700)",
    )
    projection_model: Literal["regional", "uniform", "off"] = Field(
        "regional",
        description="Live projection of the final seats: regional (region, else nation, else "
        "national swing), uniform (national swing), or off",
    )
    projection_min_region_seats: int = Field(
        8, ge=1, description="Declared seats with figures a region needs to use its own swing"
    )
    projection_resamples: int = Field(
        40,
        ge=1,
        le=1000,
        description="Resamples of the declared seats behind the projection's range (cost grows "
        "with it and with the seats: about 4 ms at 40 for 650 seats, 57 ms for 30,000)",
    )
    # The range's resamples cost 40 times the central figures: after every change of a fast
    # night they were most of the worker's time. Counted in declaration time, so a rehearsal
    # at full speed refreshes it at the same moments of the night as the live night did.
    projection_range_every_s: float = Field(
        60.0,
        ge=0,
        description="Declaration time between fresh ranges of the projection; snapshots in "
        "between carry fresh central figures and the last range, widened to include them (a "
        "range after the first is made on a thread and taken in halfway to the next); 0: a "
        "fresh range in every snapshot",
    )
    # The 2024 night's projection was still 59 seats wrong after 400 declarations
    # (docs/projection.md): a departure of 20 seats is news the desk can act on, and at 100
    # declarations (a sixth of the seats) the two models no longer differ by more than that.
    exit_poll_tracking_seats: int = Field(
        20,
        ge=0,
        description="The projection departs from the exit poll for a party when more than this "
        "many seats apart (a newsroom alert); 0: no tracking",
    )
    exit_poll_tracking_back_within_seats: int = Field(
        15,
        ge=0,
        description="A party's projection is back in line with the exit poll once within this "
        "many seats (at most ELECTION_EXIT_POLL_TRACKING_SEATS)",
    )
    exit_poll_tracking_parties: list[str] = Field(
        default_factory=list,
        description='Parties tracked against the exit poll, as JSON: ["Lab", "Con"]; empty: '
        "every party the poll names with at least ELECTION_EXIT_POLL_TRACKING_MIN_POLL_SEATS",
    )
    exit_poll_tracking_min_poll_seats: int = Field(
        10, ge=0, description="Seats the exit poll must give a party it names to be tracked"
    )
    exit_poll_tracking_min_declared: int = Field(
        100,
        ge=1,
        description="Declared seats with figures the projection rests on before it is held "
        "against the exit poll",
    )
    exit_poll_tracking_audience: Audience = Field(
        "newsroom",
        description="Who the tracking alerts are for: newsroom (the newsroom topic only) or "
        "public (the alerts topic, webhooks and event streams)",
    )
    watchlist_file: Path | None = Field(
        None, description="People of note (CSV); default data_dir/watchlist.csv"
    )

    # Push delivery
    webhook_urls: list[str] = Field(
        default_factory=list,
        description='Webhook subscribers of alerts, as JSON: ["https://example.org/hook"]',
    )
    webhook_rehearsal_urls: list[str] = Field(
        default_factory=list,
        description="Webhook subscribers that also take a rehearsal's alerts (the others never "
        'do), as JSON: ["https://desk.example.org/hook"]',
    )
    webhook_max_attempts: int = Field(
        5, ge=1, description="POSTs of one alert to one subscriber before it is dead-lettered"
    )
    webhook_backoff_s: float = Field(
        0.5,
        ge=0,
        description="Ceiling of a webhook's first retry delay, doubled on each further failure; "
        "each wait is a random half to all of its ceiling",
    )
    webhook_backoff_max_s: float = Field(
        30.0, ge=0, description="Highest ceiling of a webhook retry delay"
    )
    webhook_timeout_s: float = Field(5.0, gt=0, description="Timeout of one webhook POST")
    webhook_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Standard Webhooks secrets, each signing every webhook POST, as JSON: "
        '["whsec_..."]; two while rotating; none: unsigned',
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Deprecated (goes next release): key of the old X-Signature-256 header, "
        "still sent beside the Standard Webhooks ones while set",
    )

    @model_validator(mode="after")
    def _tracking_back_within_departure(self) -> Settings:
        """Back in line further out than departing would tell both on the same figures."""
        seats, back = self.exit_poll_tracking_seats, self.exit_poll_tracking_back_within_seats
        if seats and back > seats:
            raise ValueError(
                f"ELECTION_EXIT_POLL_TRACKING_BACK_WITHIN_SEATS ({back}) exceeds "
                f"ELECTION_EXIT_POLL_TRACKING_SEATS ({seats})"
            )
        return self

    @model_validator(mode="after")
    def _writable_topics(self) -> Settings:
        """A topic needing more in-sync copies than it has would refuse every write."""
        if self.min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"ELECTION_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) exceeds "
                f"ELECTION_TOPIC_REPLICATION_FACTOR ({self.topic_replication_factor})"
            )
        return self

    def topic_config(self) -> dict[str, str]:
        """The configuration every topic is created with, beside its partitions and copies."""
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    # The rules take plain values, not settings: these read them from the settings.
    def night_window(self) -> NightWindow:
        return NightWindow(
            ends_after_polls_close=dt.timedelta(hours=self.night_ends_hours_after_polls_close),
            future_margin=dt.timedelta(seconds=self.declared_at_future_margin_s),
        )

    def alert_policy(self) -> AlertPolicy:
        """Defaults overlaid by ELECTION_ALERT_PRIORITIES; an unknown type or priority is an "
        "error."""
        return AlertPolicy(
            priorities=merged_priorities(self.alert_priorities),
            shock_majority_share=self.alert_shock_majority_share,
            narrow_margin_votes=self.alert_narrow_margin_votes,
            rehearsal=self.mode == "rehearsal",
        )

    def hold_policy(self) -> HoldPolicy:
        """Which alerts wait on the desk, and for how long (streams/rules/holds.py)."""
        return hold_policy(
            self.desk_alert_policy, self.desk_auto_release_s, rehearsal=self.mode == "rehearsal"
        )

    @field_validator("desk_alert_policy")
    @classmethod
    def _known_hold_policies(cls, value: dict[str, str]) -> dict[str, str]:
        hold_policy(value, None, rehearsal=True)  # refused at start, not at the first alert
        return value

    def source_rules(self) -> SourceRules:
        return SourceRules(
            precedence=tuple(source_name(name) for name in self.source_precedence),
            time_tolerance_ms=round(self.source_time_tolerance_s * 1000),
        )

    def projecting(self, register: Register) -> Projecting | None:
        """How the live projection is made, or None when ELECTION_PROJECTION_MODEL is off."""
        if self.projection_model == "off":
            return None
        return Projecting(
            baseline=Baseline.of(register),
            model=self.projection_model,
            min_region_seats=self.projection_min_region_seats,
            resamples=self.projection_resamples,
            range_every=dt.timedelta(seconds=self.projection_range_every_s),
        )

    def exit_poll_tracking(self, projecting: Projecting | None) -> Tracking | None:
        """How the projection is held against the exit poll, or None with no projection or
        ELECTION_EXIT_POLL_TRACKING_SEATS at 0."""
        if projecting is None or self.exit_poll_tracking_seats == 0:
            return None
        return Tracking(
            projecting=projecting,
            departs_beyond=self.exit_poll_tracking_seats,
            back_within=self.exit_poll_tracking_back_within_seats,
            parties=tuple(self.exit_poll_tracking_parties),
            min_poll_seats=self.exit_poll_tracking_min_poll_seats,
            min_declared=self.exit_poll_tracking_min_declared,
            audience=self.exit_poll_tracking_audience,
        )

    @classmethod
    def topic_kinds(cls) -> tuple[str, ...]:
        """Every topic a worker reads or writes, by the name of its setting after `topic_`
        (`declarations`, `dead_letter`, ...): what a run on topics of its own must name."""
        settings_not_topics = {"topic_partitions", "topic_replication_factor"}
        return tuple(
            name.removeprefix("topic_")
            for name in cls.model_fields
            if name.startswith("topic_") and name not in settings_not_topics
        )

    def output_topics(self) -> dict[str, str]:
        """The Kafka topic of each kind of output the outbox queues (results, state, alerts)."""
        return {
            "results": self.topic_results,
            "state": self.topic_state,
            "alerts": self.topic_alerts,
            "newsroom": self.topic_newsroom,
        }

    def watchlist_path(self) -> Path:
        return self.watchlist_file or self.data_dir / WATCHLIST_FILE


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
