"""Typed project settings.

Resolution order, highest first: explicit arguments > environment ``DATAFLOW__SECTION__KEY``
(e.g. ``DATAFLOW__SOURCES__TWELVEDATA__BASE_URL``) > ``dataflow.yaml`` > built-in defaults.
The Twelve Data key may also come from ``TWELVEDATA_API_KEY``. Secrets are ``SecretStr``: they
never print, and ``Settings.public_dump()`` masks them.

Example:
    >>> s = load_settings(project_dir="/nonexistent-project", env={})
    >>> s.sources.twelvedata.uses_simulator
    True
    >>> s.sources.twelvedata.effective_budget()
    (None, None)
"""

from __future__ import annotations

import datetime as dt
import os
import re
import typing
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from dataflow.errors import ConfigError

CONFIG_FILE = "dataflow.yaml"
ENV_PREFIX = "DATAFLOW__"
PROJECT_ENV = "DATAFLOW_PROJECT"
API_KEY_ENV = "TWELVEDATA_API_KEY"

INTERVALS = (
    "1min",
    "5min",
    "15min",
    "30min",
    "45min",
    "1h",
    "2h",
    "4h",
    "8h",
    "1day",
    "1week",
    "1month",
)

OLDEST_HISTORY = dt.date(1900, 1, 1)
"""No market history is fetched from before this date (a typo such as 1800 is refused)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A pipeline ``name``: 1-64 letters, digits, ``_ . -``, starting with a letter or digit, so it
is safe in metric dimensions, log groups, file names and database identifiers."""
MAX_YAML_DEPTH = 64
"""``dataflow.yaml`` nested deeper than this is refused (a real one is about 6 levels deep)."""
MAX_YAML_VALUES = 100_000
"""``dataflow.yaml`` whose aliases expand to more values than this is refused (a real one holds
a few hundred; nested aliases can stand for billions: "billion laughs")."""


def _invalid(problem: str, fix: str) -> PydanticCustomError:
    """A validation error whose message says what is wrong and what to do (see _config_error)."""
    return PydanticCustomError("dataflow", "{problem}", {"problem": problem, "fix": fix})


def _check_history_start(value: dt.date | None) -> dt.date | None:
    today = dt.datetime.now(dt.UTC).date()
    if value is not None and not OLDEST_HISTORY <= value <= today:
        raise _invalid(
            f"must be between {OLDEST_HISTORY} and today ({today})",
            "use the oldest date to fetch, e.g. 2020-01-01",
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Plan(StrEnum):
    """Twelve Data plan presets: credits per minute and per day."""

    BASIC = "basic"
    """Free plan: 8 credits a minute, 800 a day."""
    GROW = "grow"
    """Grow, smallest tier: 55 credits a minute, no daily cap."""
    PRO = "pro"
    """Pro, smallest tier: 610 credits a minute, no daily cap."""
    CUSTOM = "custom"
    """Use ``credits_per_minute`` / ``credits_per_day`` as given."""
    UNLIMITED = "unlimited"
    """No client-side budget (the embedded simulator's default)."""


PLAN_BUDGETS: dict[Plan, tuple[int | None, int | None]] = {
    Plan.BASIC: (8, 800),
    Plan.GROW: (55, None),
    Plan.PRO: (610, None),
    Plan.UNLIMITED: (None, None),
}

DEFAULT_SYMBOLS: dict[str, list[str]] = {
    "stocks": ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "JPM", "SPY", "QQQ"],
    "forex": ["EUR/USD", "GBP/USD", "USD/JPY"],
    "crypto": ["BTC/USD", "ETH/USD"],
}


class RetrySettings(_Model):
    """How transient failures (429 per minute, 5xx, timeouts, bad bodies) are retried."""

    max_attempts: int = Field(5, ge=1, le=50, description="Attempts per request, first included.")
    backoff_base: float = Field(0.5, ge=0, description="First backoff (s); doubles each try.")
    backoff_max: float = Field(30.0, ge=0, description="Longest single backoff in seconds.")


class EndpointSettings(_Model):
    """One API endpoint to ingest."""

    enabled: bool = Field(True, description="Ingest this endpoint in `dataflow run`/`ingest`.")
    intervals: list[str] | None = Field(
        None, description="Bar intervals for time series and indicators (e.g. [1day, 1h])."
    )
    asset_classes: list[str] | None = Field(
        None, description="Which symbol groups the endpoint is called for (stocks, forex, crypto)."
    )
    symbols: list[str] | None = Field(None, description="Explicit symbols, overriding groups.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra query parameters (e.g. time_period: 14)."
    )
    history_start: dt.date | None = Field(
        None, description="Oldest date to fetch for this endpoint (overrides the source's)."
    )

    @field_validator("intervals")
    @classmethod
    def _known_intervals(cls, value: list[str] | None) -> list[str] | None:
        for interval in value or []:
            if interval not in INTERVALS:
                known = ", ".join(INTERVALS)
                raise ValueError(f"unknown interval {interval!r}; use one of {known}")
        return value

    @field_validator("history_start")
    @classmethod
    def _sane_history_start(cls, value: dt.date | None) -> dt.date | None:
        return _check_history_start(value)


def default_endpoints() -> dict[str, EndpointSettings]:
    """The default endpoints: time series, snapshots, FX, indicators and reference catalogues."""
    indicator_groups = ["stocks"]
    return {
        "time_series": EndpointSettings(intervals=["1day", "1h"]),
        "quote": EndpointSettings(),
        "price": EndpointSettings(),
        "eod": EndpointSettings(asset_classes=["stocks"]),
        "exchange_rate": EndpointSettings(asset_classes=["forex", "crypto"]),
        "currency_conversion": EndpointSettings(
            asset_classes=["forex", "crypto"], params={"amount": 100}
        ),
        "rsi": EndpointSettings(
            intervals=["1day"],
            asset_classes=indicator_groups,
            params={"time_period": 14, "series_type": "close"},
        ),
        "macd": EndpointSettings(
            intervals=["1day"],
            asset_classes=indicator_groups,
            params={
                "fast_period": 12,
                "slow_period": 26,
                "signal_period": 9,
                "series_type": "close",
            },
        ),
        "sma": EndpointSettings(
            intervals=["1day"],
            asset_classes=indicator_groups,
            params={"time_period": 20, "series_type": "close"},
        ),
        "ema": EndpointSettings(
            intervals=["1day"],
            asset_classes=indicator_groups,
            params={"time_period": 20, "series_type": "close"},
        ),
        "bbands": EndpointSettings(
            intervals=["1day"],
            asset_classes=indicator_groups,
            params={"time_period": 20, "sd": 2, "ma_type": "SMA", "series_type": "close"},
        ),
        "stocks": EndpointSettings(params={"exchange": "NASDAQ"}),
        "etfs": EndpointSettings(params={"exchange": "NYSE"}),
        "forex_pairs": EndpointSettings(),
        "cryptocurrencies": EndpointSettings(),
        "exchanges": EndpointSettings(),
    }


class TwelveDataSettings(_Model):
    """The Twelve Data source."""

    base_url: str = Field(
        "https://api.twelvedata.com",
        description="API root. Ignored while no api_key is set: the built-in simulator is used.",
    )
    api_key: SecretStr | None = Field(
        None, description="API key (or env TWELVEDATA_API_KEY). Sent only in the header."
    )
    plan: Plan | None = Field(
        None, description="Credit preset: basic, grow, pro, custom, unlimited (default: basic)."
    )
    credits_per_minute: int | None = Field(None, ge=1, description="Credits per minute window.")
    credits_per_day: int | None = Field(None, ge=1, description="Credits per day.")
    minute_seconds: float = Field(60.0, gt=0, description="Length of the credit window (seconds).")
    symbols: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_SYMBOLS.items()},
        description="Symbol groups: stocks (incl. ETFs), forex, crypto.",
    )
    endpoints: dict[str, EndpointSettings] = Field(
        default_factory=default_endpoints, description="Endpoints to ingest and their params."
    )
    history_start: dt.date = Field(
        default_factory=lambda: dt.date.today() - dt.timedelta(days=365),
        description="Oldest date fetched on a first or full-refresh run.",
    )
    intraday_history_days: int = Field(
        60, ge=1, description="Intraday intervals fetch at most this many days back."
    )
    batch_size: int = Field(8, ge=1, le=120, description="Symbols per comma-separated request.")
    max_concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at once.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a response.")
    retries: RetrySettings = Field(default_factory=RetrySettings)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as https://api.twelvedata.com")
        return value.rstrip("/")

    @field_validator("history_start")
    @classmethod
    def _sane_history_start(cls, value: dt.date) -> dt.date:
        checked = _check_history_start(value)
        assert checked is not None
        return checked

    @field_validator("endpoints")
    @classmethod
    def _known_endpoints(cls, value: dict[str, EndpointSettings]) -> dict[str, EndpointSettings]:
        import difflib

        from dataflow.sources.twelvedata.endpoints import ENDPOINTS

        for name in value:
            if name not in ENDPOINTS:
                close = difflib.get_close_matches(name, ENDPOINTS, n=3)
                fix = (
                    f"did you mean {' or '.join(repr(c) for c in close)}?"
                    if close
                    else f"use one of {', '.join(sorted(ENDPOINTS))}"
                )
                raise PydanticCustomError(
                    "dataflow",
                    "{problem}",
                    {"problem": "unknown endpoint", "fix": fix, "key": name},
                )
        return value

    @property
    def uses_simulator(self) -> bool:
        """No API key configured: ingest from the built-in simulator."""
        return self.api_key is None or not self.api_key.get_secret_value()

    def effective_budget(self) -> tuple[int | None, int | None]:
        """(credits per minute, credits per day); ``None`` means unlimited."""
        plan = self.plan
        if plan is None:
            plan = Plan.UNLIMITED if self.uses_simulator else Plan.BASIC
        if plan is Plan.CUSTOM:
            return self.credits_per_minute, self.credits_per_day
        per_minute, per_day = PLAN_BUDGETS[plan]
        return (self.credits_per_minute or per_minute, self.credits_per_day or per_day)

    def enabled_endpoints(self) -> dict[str, EndpointSettings]:
        """Endpoints with ``enabled: true``, in configuration order."""
        return {name: ep for name, ep in self.endpoints.items() if ep.enabled}


class SourcesSettings(_Model):
    """Data sources."""

    twelvedata: TwelveDataSettings = Field(default_factory=TwelveDataSettings)


class S3Settings(_Model):
    """Credentials and endpoint for an S3-compatible warehouse (``warehouse: s3://bucket/prefix``)."""

    endpoint_url: str | None = Field(None, description="e.g. http://127.0.0.1:9000 for MinIO.")
    region: str | None = Field(None, description="AWS region of the bucket.")
    access_key_id: SecretStr | None = Field(None, description="Access key id (or AWS env vars).")
    secret_access_key: SecretStr | None = Field(None, description="Secret key (or AWS env vars).")
    anon: bool = Field(False, description="Anonymous access (public buckets).")


class RawZoneSettings(_Model):
    """How the raw zone groups envelopes into files."""

    file_max_lines: int = Field(500, ge=1, description="Envelopes per raw file at most.")
    file_max_bytes: int = Field(
        8_000_000, ge=1024, description="Uncompressed bytes per raw file at most."
    )
    flush_seconds: float = Field(
        5.0,
        gt=0,
        description="Write buffered envelopes at least this often (what a killed run can lose).",
    )


class StorageSettings(_Model):
    """Object storage."""

    s3: S3Settings = Field(default_factory=S3Settings)
    raw: RawZoneSettings = Field(default_factory=RawZoneSettings)


class MetadataSettings(_Model):
    """The metadata database: run history, watermarks, metrics."""

    url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite in the warehouse (or .dataflow/ for s3).",
    )
    schema_name: str | None = Field(
        None,
        description="PostgreSQL schema of this project; default dataflow_<name> (one per project).",
    )
    adopt: bool = Field(
        False,
        description="Take over a metadata database or warehouse another project owns (renames).",
    )


class CatalogType(StrEnum):
    """Where the Iceberg catalog lives."""

    SQL = "sql"
    """Iceberg SQL catalog in a database (default: the metadata database)."""
    REST = "rest"
    """An Iceberg REST catalog at ``catalog.url``."""
    GLUE = "glue"
    """The AWS Glue Data Catalog (needs boto3 and AWS credentials)."""


class CatalogSettings(_Model):
    """The Iceberg catalog of the clean tables."""

    type: CatalogType = Field(CatalogType.SQL, description="sql, rest or glue.")
    url: SecretStr | None = Field(
        None, description="SQLAlchemy URL (sql) or REST endpoint; default: the metadata database."
    )
    namespace: str = Field("market", description="Namespace (database) of the clean tables.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra pyiceberg catalog properties (e.g. s3.endpoint)."
    )


class EngineName(StrEnum):
    """The engine that runs the SQL models (see docs/engines.md)."""

    DUCKDB = "duckdb"
    """Embedded, in this process: the default, fastest on one machine."""
    SPARK = "spark"
    """Apache Spark (``local[*]`` or a cluster at ``spark.master``); needs the ``spark`` extra."""


class SparkSettings(_Model):
    """The Spark session of ``engine: spark``."""

    master: str = Field(
        "local[*]", description="Spark master: local[*], spark://host:7077, yarn, k8s://…"
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Spark properties passed to the session as is (memory, executors, I/O…).",
    )


class TransformSettings(_Model):
    """The transform stage."""

    engine: EngineName | None = Field(
        None, description="Engine of the transform only (default: the top-level engine)."
    )
    batch_files: int = Field(
        200, ge=1, description="Raw files read per batch (bounds memory on any input size)."
    )
    batch_bytes: int = Field(
        16_000_000, ge=1, description="Compressed raw bytes per batch (a larger file is alone)."
    )


class Policy(StrEnum):
    """What happens to new data when its table's ruleset does not pass."""

    FAIL = "fail"
    """The new data is not published: ``main`` stays where it was and the run fails. The
    rejected snapshot stays on the table's audit branch until the next run."""
    WARN = "warn"
    """The new data is published; the failed rules are recorded (and alarm on the score)."""
    QUARANTINE = "quarantine"
    """Rows failing a row-level rule move to ``<table>__quarantine`` (with the run id, the rule
    names and the row); the rest is published. A failed dataset-level rule (RowCount, ...)
    is recorded as with ``warn``."""

    @property
    def publishes(self) -> bool:
        """New data reaches readers even when a rule failed."""
        return self is not Policy.FAIL


class QualitySettings(_Model):
    """Data-quality gates (`quality/<table>.dqdl` rulesets, built-in ones otherwise)."""

    policies: dict[str, Policy] = Field(
        default_factory=dict,
        description="Policy per table (fail, warn, quarantine); overrides the ruleset's Metadata.",
    )
    default_policy: Policy | None = Field(
        None, description="Policy when neither the table nor its ruleset names one (else warn)."
    )


class WorkgroupSettings(_Model):
    """An Athena-style workgroup."""

    bytes_scanned_cutoff_per_query: int | None = Field(
        None, ge=1, description="A query planned to read more bytes is CANCELLED (none: no limit)."
    )
    query_timeout_seconds: float = Field(
        1800.0,
        gt=0,
        le=7 * 24 * 3600,
        description="A query running longer is stopped, FAILED with EXCEEDED_TIME_LIMIT "
        "(default: Athena's 30 minutes).",
    )


class QuerySettings(_Model):
    """The query stage (`dataflow query`)."""

    results_prefix: str = Field(
        "results", description="Result files: <warehouse>/<prefix>/<id>.csv"
    )
    queries_dir: str = Field("queries", description="Named queries: <project>/<dir>/<name>.sql")
    default_workgroup: str = Field("primary", description="Workgroup of queries that name none.")
    workgroups: dict[str, WorkgroupSettings] = Field(
        default_factory=dict, description="Workgroups by name (primary always exists)."
    )


class MetricSpec(_Model):
    """A CloudWatch-style metric: namespace + name + the exact dimension set."""

    namespace: str = Field(..., min_length=1, description="e.g. Dataflow/Ingest.")
    name: str = Field(..., min_length=1, max_length=255, description="e.g. Errors.")
    dimensions: dict[str, str] = Field(default_factory=dict, description="Exact dimension set.")


class ComparisonOperator(StrEnum):
    """How an alarm compares a datapoint with its threshold (CloudWatch names)."""

    GE = "GreaterThanOrEqualToThreshold"
    """Breaching when value >= threshold."""
    GT = "GreaterThanThreshold"
    """Breaching when value > threshold."""
    LT = "LessThanThreshold"
    """Breaching when value < threshold."""
    LE = "LessThanOrEqualToThreshold"
    """Breaching when value <= threshold."""


class TreatMissingData(StrEnum):
    """How an alarm fills evaluation periods without datapoints (CloudWatch semantics)."""

    MISSING = "missing"
    """Missing periods are neither good nor bad; all missing -> INSUFFICIENT_DATA."""
    NOT_BREACHING = "notBreaching"
    """Missing periods count as good (within the threshold)."""
    BREACHING = "breaching"
    """Missing periods count as bad (breaching the threshold)."""
    IGNORE = "ignore"
    """Missing periods keep the current alarm state."""


class ActionSpec(_Model):
    """What an alarm does on a state transition."""

    type: str = Field(..., description="log, webhook, email or command.")
    url: str | None = Field(None, description="webhook: where to POST the JSON.")
    format: str = Field("json", description="webhook: json, or slack for a Slack-style payload.")
    to: list[str] = Field(default_factory=list, description="email: recipients.")
    sender: str | None = Field(None, description="email: From address.")
    smtp_host: str = Field("127.0.0.1", description="email: SMTP server.")
    smtp_port: int = Field(25, ge=1, le=65535, description="email: SMTP port.")
    command: list[str] | None = Field(None, description="command: argv to run.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in {"log", "webhook", "email", "command"}:
            raise ValueError("use one of log, webhook, email, command")
        return value


class AlarmSpec(_Model):
    """A CloudWatch-style metric alarm (PutMetricAlarm's fields, in snake_case)."""

    name: str = Field(..., min_length=1, max_length=255, description="Alarm name.")
    description: str | None = Field(None, description="What the alarm means, for people.")
    metric: MetricSpec
    statistic: str = Field("Sum", description="Sum, Average, Minimum, Maximum, SampleCount, pNN.")
    period: int = Field(60, ge=10, description="Seconds per datapoint: 10, 20, 30 or n x 60.")
    evaluation_periods: int = Field(1, ge=1, description="N: periods evaluated.")
    datapoints_to_alarm: int | None = Field(None, ge=1, description="M of N (default N).")
    comparison_operator: ComparisonOperator = ComparisonOperator.GT
    threshold: float = Field(0.0, description="Value compared with each datapoint.")
    treat_missing_data: TreatMissingData = TreatMissingData.MISSING
    actions: list[ActionSpec] = Field(default_factory=list, description="On entering ALARM.")
    ok_actions: list[ActionSpec] = Field(default_factory=list, description="On entering OK.")
    insufficient_data_actions: list[ActionSpec] = Field(
        default_factory=list, description="On entering INSUFFICIENT_DATA."
    )
    enabled: bool = Field(True, description="Evaluate and fire actions.")

    @field_validator("period")
    @classmethod
    def _cloudwatch_period(cls, value: int) -> int:
        if value not in (10, 20, 30) and value % 60:
            raise ValueError("CloudWatch periods are 10, 20, 30 or a multiple of 60 seconds")
        return value


class RetryPolicy(_Model):
    """EventBridge Scheduler's retry policy for a job."""

    maximum_retry_attempts: int = Field(2, ge=0, le=185, description="Retries after a failure.")
    maximum_event_age_seconds: int = Field(
        86_400, ge=60, le=86_400, description="Give up retrying a fire older than this."
    )


class JobSpec(_Model):
    """A scheduled job: what to run and when (EventBridge Scheduler's fields)."""

    name: str = Field(..., min_length=1, max_length=64, description="Job name.")
    schedule: str = Field(
        ..., description="rate(5 minutes), cron(0/15 13-21 ? * MON-FRI *), at(…)."
    )
    timezone: str = Field("UTC", description="IANA zone the expression is read in.")
    start_date: dt.datetime | None = Field(None, description="No fire before this (UTC).")
    end_date: dt.datetime | None = Field(None, description="No fire after this (UTC).")
    flexible_window_minutes: int = Field(
        0, ge=0, le=1440, description="0 = fire on time; else at some time within the window."
    )
    command: list[str] = Field(
        default_factory=lambda: ["run"],
        description="dataflow arguments, e.g. [ingest, --endpoints, quote].",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    enabled: bool = Field(True, description="Scheduled at all.")

    @field_validator("schedule")
    @classmethod
    def _valid_expression(cls, value: str) -> str:
        from dataflow.schedule.expressions import parse_expression

        try:
            parse_expression(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        from dataflow.schedule.expressions import zone

        try:
            zone(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


class CatchUp(StrEnum):
    """What the scheduler does about fires it missed while it was not running."""

    LATEST = "latest"
    """One run for all the missed fires (at the latest one), within the maximum event age."""
    NONE = "none"
    """Skip the missed fires (recorded as skipped)."""


class ScheduleSettings(_Model):
    """The scheduler (`dataflow schedule`)."""

    jobs: list[JobSpec] = Field(default_factory=list, description="Scheduled jobs.")
    catch_up: CatchUp = Field(
        CatchUp.LATEST, description="After downtime: latest (one run for missed fires) or none."
    )
    shutdown_timeout: float = Field(
        300.0, ge=0, description="Seconds to wait for running jobs on SIGTERM before stopping them."
    )

    @field_validator("jobs")
    @classmethod
    def _unique_names(cls, jobs: list[JobSpec]) -> list[JobSpec]:
        seen: set[str] = set()
        for job in jobs:
            if job.name in seen:
                raise ValueError(f"two jobs are named {job.name!r}; job names must be unique")
            seen.add(job.name)
        return jobs


class RunSettings(_Model):
    """Pipeline runs."""

    lock_timeout: float = Field(
        600.0, ge=0, description="Seconds a run waits for another run of the project to finish."
    )


class MetricsSettings(_Model):
    """The metrics every stage records (CloudWatch-style)."""

    retention_days: int = Field(
        455,
        ge=1,
        description="Datapoints older than this are deleted after each run (CloudWatch: 455).",
    )


class LogSettings(_Model):
    """Logging."""

    level: str = Field("INFO", description="Lowest level written: DEBUG, INFO, WARNING, ERROR.")
    retention_days: int = Field(30, ge=1, description="Days of JSON log files kept.")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return upper


class Settings(_Model):
    """All settings of a project. ``project_dir`` is where ``dataflow.yaml`` lives."""

    project_dir: Path = Field(Path("."), description="The project folder.")
    name: str = Field("dataflow", description="Pipeline name, used as a metric dimension.")
    warehouse: str = Field("warehouse", description="Folder (relative to project) or s3://b/p.")
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    metadata: MetadataSettings = Field(default_factory=MetadataSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    engine: EngineName = Field(EngineName.DUCKDB, description="duckdb or spark (docs/engines.md).")
    spark: SparkSettings = Field(default_factory=SparkSettings)
    transform: TransformSettings = Field(default_factory=TransformSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    alarms: list[AlarmSpec] = Field(default_factory=list, description="CloudWatch-style alarms.")
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    logging: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise _invalid(
                "is not a safe pipeline name (1-64 letters, digits, _ . -, "
                "starting with a letter or digit)",
                "use a short name such as market-data",
            )
        return value

    @field_validator("warehouse")
    @classmethod
    def _warehouse_given(cls, value: str) -> str:
        if not value.strip():
            raise _invalid(
                "is empty", "use a folder (relative to the project) or s3://bucket/prefix"
            )
        return value

    @property
    def warehouse_is_remote(self) -> bool:
        """True for ``s3://`` warehouses."""
        return "://" in self.warehouse

    @property
    def warehouse_uri(self) -> str:
        """The warehouse root as an absolute path or ``s3://`` URI, without a trailing slash."""
        if self.warehouse_is_remote:
            return self.warehouse.rstrip("/")
        path = Path(self.warehouse).expanduser()
        if not path.is_absolute():
            path = self.project_dir / path
        return str(path.resolve())

    @property
    def state_dir(self) -> Path:
        """Local folder for the metadata DB, lock and logs when the warehouse is remote."""
        if self.warehouse_is_remote:
            return (self.project_dir / ".dataflow").resolve()
        return Path(self.warehouse_uri)

    @property
    def metadata_url(self) -> str:
        """SQLAlchemy URL of the metadata database, naming the project that owns its rows."""
        from dataflow.metadata.db import project_url

        url = (
            self.metadata.url.get_secret_value()
            if self.metadata.url is not None
            else f"sqlite:///{self.state_dir / 'dataflow.db'}"
        )
        # The project rides along: every row belongs to it (dataflow.metadata.db).
        return project_url(
            url, self.name, schema=self.metadata.schema_name, adopt=self.metadata.adopt
        )

    def public_dump(self) -> dict[str, Any]:
        """Settings as plain data with every secret masked (safe to print or log)."""
        return self.model_dump(mode="json")


# --- loading -------------------------------------------------------------------------------------


def resolve_project_dir(project: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The project folder: explicit > env DATAFLOW_PROJECT > current folder."""
    env = os.environ if env is None else env
    chosen = project if project is not None else env.get(PROJECT_ENV) or "."
    return Path(chosen).expanduser().resolve()


def load_settings(
    project_dir: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load and validate the settings of a project.

    Args:
        project_dir: the project folder (default: env DATAFLOW_PROJECT, else the current folder).
        overrides: explicit values as dotted paths, e.g. ``{"sources.twelvedata.batch_size": 4}``.
        env: the environment to read (default ``os.environ``).

    Raises:
        ConfigError: one line naming the file or variable, the key path, the value and the fix.

    Example:
        >>> load_settings("/tmp/x", overrides={"warehouse": "/tmp/wh"}, env={}).warehouse
        '/tmp/wh'
    """
    env = os.environ if env is None else env
    root = resolve_project_dir(project_dir, env)
    config_path = root / CONFIG_FILE
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    if config_path.is_file():
        data, lines = _read_yaml(config_path)
        for path in _leaf_paths(data):
            line = lines.get(path)
            origins[path] = f"{config_path}:{line}" if line else str(config_path)
    elif root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: is not a folder — pass --project DIR with a project folder")

    for key, raw in sorted(env.items()):
        if not key.startswith(ENV_PREFIX) or raw == "":
            continue
        path = tuple(part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part)
        if path:
            _set_path(data, path, _parse_scalar(raw))
            origins[path] = f"env {key}"
    api_key = env.get(API_KEY_ENV)
    if api_key and not _get_path(data, ("sources", "twelvedata", "api_key")):
        _set_path(data, ("sources", "twelvedata", "api_key"), api_key)
        origins[("sources", "twelvedata", "api_key")] = f"env {API_KEY_ENV}"

    for dotted, value in (overrides or {}).items():
        path = tuple(dotted.split("."))
        _set_path(data, path, value)
        origins[path] = "argument"

    data = _resolve_nulls(data, Settings, (), origins, config_path)
    data["project_dir"] = root
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, origins, config_path) from None
    _check_local_paths(settings, origins, config_path)
    return settings


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting (the composer recurses once per level)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"{self.name}:{mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels deep "
                    "— a dataflow.yaml is a few levels of settings; fix the structure there"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The file's settings and the line of each key; duplicate keys and bad bytes refused."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}) — check the file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8 "
            "— save the file as UTF-8"
        ) from None
    try:
        loader = _StrictLoader(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc, text)) from None
    loader.name = str(path)
    try:
        node = loader.get_single_node()
        lines = _key_lines(node, path)
        loaded = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc, text)) from None
    finally:
        loader.dispose()
    if loaded is None:
        return {}, lines
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings, not a list")
    return loaded, lines


def _yaml_problem(path: Path, exc: yaml.YAMLError, text: str) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line = text[: exc.position].count("\n") + 1
        return (
            f"{path}:{line}: character U+{code:04X} at offset {exc.position} is not allowed "
            "in YAML — remove it"
        )
    mark = getattr(exc, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"{path}{where}: {problem} — fix the YAML syntax there"


def _key_lines(root: yaml.Node | None, path: Path) -> dict[tuple[str, ...], int]:
    """Line of every mapping key by its key path; a key given twice in one mapping is refused.

    YAML itself lets the last duplicate win, which hides the first value from whoever reads it.
    Aliases are walked once; what they expand to is bounded (see :func:`_expanded_size`).
    """
    lines: dict[tuple[str, ...], int] = {}
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())] if root is not None else []
    while stack:
        node, prefix = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in seen:
                    dotted = ".".join((*prefix, key))
                    raise ConfigError(
                        f"{path}:{line}: {dotted}: given twice (lines {seen[key]} and {line}) "
                        "— keep one of them"
                    )
                seen[key] = line
                lines[(*prefix, key)] = line
                stack.append((value_node, (*prefix, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*prefix, str(i))) for i, item in enumerate(node.value))
    if root is not None and _expanded_size(root, {}) > MAX_YAML_VALUES:
        raise ConfigError(
            f"{path}: its aliases expand to more than {MAX_YAML_VALUES:,} values "
            "— write the settings out instead of nesting aliases (*name)"
        )
    return lines


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (memoised per node;
    the recursion is bounded by the composer's depth limit)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = size
    return size


def _resolve_nulls(
    data: Mapping[str, Any],
    model: type[BaseModel],
    prefix: tuple[str, ...],
    origins: Mapping[tuple[str, ...], str],
    config_path: Path,
) -> dict[str, Any]:
    """An empty setting means its default; an empty entry of a list or mapping is refused.

    ``metadata:`` with only comments under it is "the default metadata settings", and ``quote:``
    under ``endpoints`` is the endpoint with its defaults; but ``stocks:`` under ``symbols``
    has no default to fall back on, and dropping it would silently ingest no stocks.
    """
    resolved: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        field = model.model_fields.get(key)
        if value is None:
            continue
        if field is None or field.annotation is None:
            resolved[key] = value
            continue
        resolved[key] = _resolve_value(
            value, field.annotation, (*prefix, key), origins, config_path
        )
    return resolved


def _resolve_value(
    value: Any,
    annotation: Any,
    path: tuple[str, ...],
    origins: Mapping[tuple[str, ...], str],
    config_path: Path,
) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if isinstance(value, Mapping):
            return _resolve_nulls(value, annotation, path, origins, config_path)
        return value
    if origin is dict and isinstance(value, Mapping) and len(args) == 2:
        item_type = args[1]
        is_model = isinstance(item_type, type) and issubclass(item_type, BaseModel)
        out: dict[str, Any] = {}
        for key, item in value.items():
            item_path = (*path, str(key))
            if item is None and not is_model:
                where = _origin_of(item_path, origins, config_path)
                raise ConfigError(
                    f"{where}: {'.'.join(item_path)}: is empty — give a value "
                    "(a list is written [a, b]; [] for none) or remove the key"
                )
            given = {} if item is None else item
            out[str(key)] = _resolve_value(given, item_type, item_path, origins, config_path)
        return out
    if origin is list and isinstance(value, list) and args:
        item_type = args[0]
        return [
            _resolve_value(item, item_type, (*path, str(i)), origins, config_path)
            for i, item in enumerate(value)
        ]
    return value


def _origin_of(
    loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str], config_path: Path
) -> str:
    for i in range(len(loc), 0, -1):
        origin = origins.get(loc[:i])
        if origin:
            return origin
    return str(config_path)


def _check_local_paths(
    settings: Settings, origins: Mapping[tuple[str, ...], str], config_path: Path
) -> None:
    """Refuse a warehouse that is a file, and SQLite databases in folders nobody made.

    Dataflow creates the folders it owns (the project's, the warehouse, the state folder); a
    SQLite URL into a missing folder elsewhere is almost always a typo, and creating it would
    scatter a project's state over the disk.
    """
    if not settings.warehouse_is_remote:
        warehouse = Path(settings.warehouse_uri)
        if warehouse.exists() and not warehouse.is_dir():
            where = _origin_of(("warehouse",), origins, config_path)
            raise ConfigError(
                f"{where}: warehouse: {settings.warehouse!r} is a file, not a folder "
                "— use a folder (relative to the project) or s3://bucket/prefix"
            )
    owned = (settings.project_dir.resolve(), settings.state_dir.resolve())
    for key, secret in (
        ("metadata.url", settings.metadata.url),
        ("catalog.url", settings.catalog.url),
    ):
        if secret is None:
            continue
        folder = _sqlite_folder(secret.get_secret_value())
        if folder is None or folder.is_dir():
            continue
        where = _origin_of(tuple(key.split(".")), origins, config_path)
        if folder.exists():
            raise ConfigError(
                f"{where}: {key}: {folder} is a file, not a folder "
                "— point the SQLite URL into a folder"
            )
        if not any(folder.is_relative_to(base) for base in owned):
            raise ConfigError(
                f"{where}: {key}: folder {folder} does not exist — create it first, or "
                "leave the setting out to keep the database in the warehouse"
            )


def _sqlite_folder(url: str) -> Path | None:
    """The folder of a SQLite file URL (relative paths as SQLite reads them: from the cwd)."""
    match = re.match(r"sqlite(?:\+\w+)?:///([^?]*)", url)
    if match is None or match.group(1) in ("", ":memory:"):
        return None
    return Path(match.group(1)).expanduser().resolve().parent


def _parse_scalar(raw: str) -> Any:
    """Environment values are YAML scalars or flow collections: ``8``, ``true``, ``[a, b]``."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _leaf_paths(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(_leaf_paths(value, path))
    return paths


def _get_path(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


_FIXES = {
    "extra_forbidden": "remove it or check the spelling (see `dataflow init` for every key)",
    "missing": "add it",
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
    "int_from_float": "use a whole number",
    "float_parsing": "use a number",
    "float_type": "use a number",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "date_parsing": "use a date like 2025-01-31",
    "date_from_datetime_parsing": "use a date like 2025-01-31",
    "date_type": "use a date like 2025-01-31",
    "string_type": "use text (quote it in YAML)",
    "dict_type": "use a mapping of key: value",
    "list_type": "use a list, e.g. [a, b]",
    "enum": "use one of the values listed",
    "greater_than_equal": "use a value of at least {ge}",
    "greater_than": "use a value above {gt}",
    "less_than_equal": "use a value of at most {le}",
    "less_than": "use a value below {lt}",
}


def _config_error(
    exc: ValidationError, origins: Mapping[tuple[str, ...], str], config_path: Path
) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    ctx = err.get("ctx", {})
    loc = tuple(str(part) for part in err["loc"])
    if err["type"] == "dataflow" and "key" in ctx:
        loc = (*loc, str(ctx["key"]))
    source = _origin_of(loc, origins, config_path)
    key = ".".join(loc) or "(top level)"
    value = err.get("input")
    secret = {"api_key", "access_key_id", "secret_access_key"} & set(loc) or key in {
        "metadata.url",
        "catalog.url",
    }
    shown = "***" if secret else value.isoformat() if isinstance(value, dt.date) else repr(value)
    if len(shown) > 60:
        shown = f"{shown[:40]}…({len(shown)} characters)"
    if err["type"] == "dataflow":
        if "key" in ctx:
            return ConfigError(f"{source}: {key}: {ctx['problem']} — {ctx['fix']}")
        return ConfigError(f"{source}: {key}: {shown} {ctx['problem']} — {ctx['fix']}")
    if err["type"] == "extra_forbidden":
        return ConfigError(f"{source}: {key}: unknown setting — {_FIXES['extra_forbidden']}")
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    fix = _FIXES.get(err["type"], "fix the value").format(**ctx)
    return ConfigError(f"{source}: {key}: {shown} is invalid ({message}) — {fix}")
