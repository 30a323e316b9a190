"""Initial schema: runs, run stages, watermarks, metric points.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Revisions are frozen copies of the schema at their time: they spell out their columns instead
of importing ``schema.py``, which keeps describing only the newest state.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(50), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_status_started_at", "runs", ["status", "started_at"])

    op.create_table(
        "run_stages",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name="fk_run_stages_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", name="pk_run_stages"),
    )

    op.create_table(
        "watermarks",
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(100), nullable=False),
        sa.Column("interval", sa.String(20), nullable=False),
        sa.Column("value", ts, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("source", "endpoint", "symbol", "interval", name="pk_watermarks"),
    )

    op.create_table(
        "metric_points",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("dimensions", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("timestamp", ts, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_metric_points"),
    )
    op.create_index(
        "ix_metric_points_metric_time",
        "metric_points",
        ["namespace", "name", "dimensions", "timestamp"],
    )
    op.create_index("ix_metric_points_run_id", "metric_points", ["run_id"])


def downgrade() -> None:
    op.drop_table("metric_points")
    op.drop_table("watermarks")
    op.drop_table("run_stages")
    op.drop_table("runs")
