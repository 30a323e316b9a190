"""Alarm states and history; scheduled jobs, their fires and the dead-letter record.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

A frozen copy of the schema at its time (see 0001): columns are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "alarm_states",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_data", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("evaluated_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_alarm_states"),
    )
    op.create_table(
        "alarm_history",
        sa.Column("id", big_id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("timestamp", ts, nullable=False),
        sa.Column("item_type", sa.String(30), nullable=False),
        sa.Column("old_state", sa.String(30), nullable=True),
        sa.Column("new_state", sa.String(30), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_history"),
    )
    op.create_index("ix_alarm_history_name_timestamp", "alarm_history", ["name", "timestamp"])
    op.create_table(
        "schedule_fires",
        sa.Column("id", big_id, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("scheduled_at", ts, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_fires"),
    )
    op.create_index("ix_schedule_fires_job_scheduled_at", "schedule_fires", ["job", "scheduled_at"])
    op.create_table(
        "dead_letters",
        sa.Column("id", big_id, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("scheduled_at", ts, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", ts, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("recorded_at", ts, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_index("ix_schedule_fires_job_scheduled_at", table_name="schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_index("ix_alarm_history_name_timestamp", table_name="alarm_history")
    op.drop_table("alarm_history")
    op.drop_table("alarm_states")
