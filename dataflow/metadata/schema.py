"""The tables of the metadata database, as SQLAlchemy Core.

This module describes the *current* schema; the Alembic revisions in ``migrations/versions``
are what create and change it in a database. A change here always comes with a new revision
(``tests/metadata`` compares the two).

Datetimes are timezone-aware UTC in Python. SQLite has no time zones, so :class:`UTCDateTime`
stores naive UTC there (ISO text that sorts like time) and turns values back into aware UTC
on the way out; PostgreSQL gets ``timestamp with time zone``.

Example:
    >>> sorted(t.name for t in metadata.sorted_tables)[-4:]
    ['run_stages', 'runs', 'schedule_fires', 'watermarks']
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

UTC = dt.UTC

#: Name of Alembic's version table. Not the default ``alembic_version``: the same database file
#: also holds the Iceberg SQL catalog, and any other tool using Alembic there must not collide.
VERSION_TABLE = "dataflow_alembic_version"


def utc(value: dt.datetime, *, what: str = "datetime") -> dt.datetime:
    """Return ``value`` as aware UTC; refuse naive datetimes (their zone is a guess).

    Example:
        >>> utc(dt.datetime(2024, 1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))).hour
        1
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value.isoformat()} has no time zone; pass an aware UTC datetime")
    return value.astimezone(UTC)


def utcnow() -> dt.datetime:
    """The current time, aware UTC."""
    return dt.datetime.now(UTC)


def canonical_dimensions(dimensions: Mapping[str, str] | None) -> str:
    """The dimension set as one canonical string (sorted keys, compact JSON).

    CloudWatch identifies a metric by namespace, name and the *exact* set of dimensions, so
    equality of this string is equality of the metric, and an index on it serves look-ups.

    Example:
        >>> canonical_dimensions({"b": "2", "a": "1"})
        '{"a":"1","b":"2"}'
    """
    return json.dumps(dict(dimensions or {}), sort_keys=True, separators=(",", ":"))


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        value = utc(value)
        # SQLite's DATETIME text has no offset; store naive UTC so strings compare as times.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: dt.datetime | None,
        dialect: Dialect,  # noqa: ARG002 - the signature SQLAlchemy calls
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON()


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("trigger", sa.String(50), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("duration_s", sa.Float(), nullable=True),
    sa.Column("params", _json(), nullable=False),
    sa.Column("message", sa.Text(), nullable=True),
    # Who runs it: lets a later run tell a dead "running" run from a live one.
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Index("ix_runs_started_at", "started_at"),
    sa.Index("ix_runs_status_started_at", "status", "started_at"),
)

run_stages = sa.Table(
    "run_stages",
    metadata,
    sa.Column(
        "run_id",
        sa.String(64),
        sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("stage", sa.String(100), primary_key=True),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("duration_s", sa.Float(), nullable=True),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Column("requests", sa.BigInteger(), nullable=False),
    sa.Column("errors", sa.BigInteger(), nullable=False),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("details", _json(), nullable=False),
)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("endpoint", sa.String(100), primary_key=True),
    sa.Column("symbol", sa.String(100), primary_key=True),
    sa.Column("interval", sa.String(20), primary_key=True),
    sa.Column("value", UTCDateTime(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

metric_points = sa.Table(
    "metric_points",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # canonical_dimensions(): equality here is CloudWatch's "same metric".
    sa.Column("dimensions", sa.Text(), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Index("ix_metric_points_metric_time", "namespace", "name", "dimensions", "timestamp"),
    sa.Index("ix_metric_points_run_id", "run_id"),
)

# --- external tables (the Glue-crawler registry, dataflow.catalog.external) ----------------------

external_tables = sa.Table(
    "external_tables",
    metadata,
    sa.Column("database", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("location", sa.Text(), nullable=False),
    sa.Column("classification", sa.String(50), nullable=False),
    sa.Column("columns", _json(), nullable=False),
    sa.Column("partition_keys", _json(), nullable=False),
    sa.Column("parameters", _json(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("deprecated", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_crawled_at", UTCDateTime(), nullable=True),
)

_EXTERNAL_FK = (["database", "name"], ["external_tables.database", "external_tables.name"])

external_table_versions = sa.Table(
    "external_table_versions",
    metadata,
    sa.Column("database", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("location", sa.Text(), nullable=False),
    sa.Column("classification", sa.String(50), nullable=False),
    sa.Column("columns", _json(), nullable=False),
    sa.Column("partition_keys", _json(), nullable=False),
    sa.Column("parameters", _json(), nullable=False),
    sa.Column("deprecated", sa.Boolean(), nullable=False),
    sa.Column("archived_at", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(*_EXTERNAL_FK, ondelete="CASCADE"),
)

external_partitions = sa.Table(
    "external_partitions",
    metadata,
    sa.Column("database", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    # JSON of the values list: one string that can be a key, in the partition-key order.
    sa.Column("values_key", sa.String(1024), primary_key=True),
    sa.Column("values", _json(), nullable=False),
    sa.Column("location", sa.Text(), nullable=False),
    sa.Column("parameters", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(*_EXTERNAL_FK, ondelete="CASCADE"),
)

external_files = sa.Table(
    "external_files",
    metadata,
    sa.Column("database", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("modified", UTCDateTime(), nullable=True),
    # The file's inferred schema as the crawler saw it, so an unchanged file is not read again.
    sa.Column("schema", _json(), nullable=False),
    sa.Column("crawled_at", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(*_EXTERNAL_FK, ondelete="CASCADE"),
)

# --- alarms (monitor) and the scheduler ---------------------------------------------------------

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

alarm_states = sa.Table(
    "alarm_states",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("reason_data", _json(), nullable=False),
    # Hash of the alarm's definition: a change is a ConfigurationUpdate in the history.
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("evaluated_at", UTCDateTime(), nullable=True),
)

alarm_history = sa.Table(
    "alarm_history",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    # CloudWatch's HistoryItemType: ConfigurationUpdate | StateUpdate | Action.
    sa.Column("item_type", sa.String(30), nullable=False),
    sa.Column("old_state", sa.String(30), nullable=True),
    sa.Column("new_state", sa.String(30), nullable=True),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("data", _json(), nullable=False),
    sa.Index("ix_alarm_history_name_timestamp", "name", "timestamp"),
)

schedule_fires = sa.Table(
    "schedule_fires",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Index("ix_schedule_fires_job_scheduled_at", "job", "scheduled_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("first_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("payload", _json(), nullable=False),
)


__all__ = [
    "UTC",
    "VERSION_TABLE",
    "UTCDateTime",
    "alarm_history",
    "alarm_states",
    "canonical_dimensions",
    "dead_letters",
    "external_files",
    "external_partitions",
    "external_table_versions",
    "external_tables",
    "metadata",
    "metric_points",
    "run_stages",
    "runs",
    "schedule_fires",
    "utc",
    "utcnow",
    "watermarks",
]


# --- data quality: ruleset evaluations (dataflow.quality.history) -------------------------------

dq_evaluations = sa.Table(
    "dq_evaluations",
    metadata,
    sa.Column("result_id", sa.String(64), primary_key=True),
    sa.Column("ruleset_name", sa.String(255), nullable=False),
    sa.Column("ruleset_hash", sa.String(64), nullable=False),
    # "market.time_series" for a catalog table, the file path for `dq check --data`.
    sa.Column("dataset", sa.String(1024), nullable=False),
    # Iceberg snapshot ids are 64-bit and may be negative; text keeps them exact everywhere.
    sa.Column("snapshot_id", sa.String(64), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("evaluation_context", sa.String(255), nullable=False),
    sa.Column("started_on", UTCDateTime(), nullable=False),
    sa.Column("completed_on", UTCDateTime(), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("rules_passed", sa.Integer(), nullable=False),
    sa.Column("rules_failed", sa.Integer(), nullable=False),
    sa.Column("rules_errored", sa.Integer(), nullable=False),
    sa.Column("aggregated_metrics", _json(), nullable=False),
    sa.Column("analyzer_results", _json(), nullable=False),
    sa.Index("ix_dq_evaluations_dataset_completed_on", "dataset", "completed_on"),
    sa.Index("ix_dq_evaluations_run_id", "run_id"),
)

dq_rule_results = sa.Table(
    "dq_rule_results",
    metadata,
    sa.Column(
        "result_id",
        sa.String(64),
        sa.ForeignKey("dq_evaluations.result_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("result", sa.String(10), nullable=False),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("evaluated_metrics", _json(), nullable=False),
    sa.Column("labels", _json(), nullable=False),
)

dq_metrics = sa.Table(
    "dq_metrics",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    sa.Column(
        "result_id",
        sa.String(64),
        sa.ForeignKey("dq_evaluations.result_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Denormalised from dq_evaluations: the history of one metric is one index range.
    sa.Column("dataset", sa.String(1024), nullable=False),
    sa.Column("ruleset_name", sa.String(255), nullable=False),
    sa.Column("evaluation_context", sa.String(255), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Index(
        "ix_dq_metrics_series",
        "dataset",
        "ruleset_name",
        "evaluation_context",
        "key",
        "recorded_at",
    ),
)

__all__ += ["dq_evaluations", "dq_metrics", "dq_rule_results"]


# --- query history: one row per query execution (dataflow.query.history) ------------------------

query_executions = sa.Table(
    "query_executions",
    metadata,
    sa.Column("query_id", sa.String(64), primary_key=True),
    sa.Column("query", sa.Text(), nullable=False),
    sa.Column("dialect", sa.String(16), nullable=False),
    sa.Column("workgroup", sa.String(128), nullable=False),
    # Athena's StatementType (DML, DDL, UTILITY) and SubstatementType (SELECT, UNLOAD, ...).
    sa.Column("statement_type", sa.String(16), nullable=False),
    sa.Column("substatement_type", sa.String(64), nullable=False),
    # QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("state_change_reason", sa.Text(), nullable=True),
    sa.Column("error_type", sa.String(64), nullable=True),
    sa.Column("error_category", sa.Integer(), nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("submitted_at", UTCDateTime(), nullable=False),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("engine_ms", sa.Integer(), nullable=True),
    sa.Column("planning_ms", sa.Integer(), nullable=True),
    sa.Column("queue_ms", sa.Integer(), nullable=True),
    sa.Column("total_ms", sa.Integer(), nullable=True),
    sa.Column("rows_returned", sa.BigInteger(), nullable=True),
    sa.Column("bytes_scanned", sa.BigInteger(), nullable=True),
    sa.Column("files_scanned", sa.Integer(), nullable=True),
    # The result object's key in the warehouse (results/<query_id>.csv).
    sa.Column("output_location", sa.String(1024), nullable=True),
    sa.Column("as_of", sa.String(64), nullable=True),
    # {"market.time_series": "<snapshot id>"}: what the query saw (ids as text: 64-bit).
    sa.Column("snapshots", _json(), nullable=False),
    sa.Index("ix_query_executions_submitted_at", "submitted_at"),
    sa.Index("ix_query_executions_workgroup_submitted_at", "workgroup", "submitted_at"),
)

__all__ += ["query_executions"]


# --- ownership: which project this database (or PostgreSQL schema) belongs to -------------------

#: One row at most: the project that owns every other row here (dataflow.metadata.db).
project_owner = sa.Table(
    "dataflow_project",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
    sa.Column("host", sa.String(255), nullable=True),
)

__all__ += ["project_owner"]
