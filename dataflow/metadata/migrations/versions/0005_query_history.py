"""Query history: one row per query execution (Athena's QueryExecution).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A frozen copy of the schema at its time (see 0001): columns are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "query_executions",
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("dialect", sa.String(16), nullable=False),
        sa.Column("workgroup", sa.String(128), nullable=False),
        sa.Column("statement_type", sa.String(16), nullable=False),
        sa.Column("substatement_type", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_change_reason", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_category", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("submitted_at", ts, nullable=False),
        sa.Column("completed_at", ts, nullable=True),
        sa.Column("engine_ms", sa.Integer(), nullable=True),
        sa.Column("planning_ms", sa.Integer(), nullable=True),
        sa.Column("queue_ms", sa.Integer(), nullable=True),
        sa.Column("total_ms", sa.Integer(), nullable=True),
        sa.Column("rows_returned", sa.BigInteger(), nullable=True),
        sa.Column("bytes_scanned", sa.BigInteger(), nullable=True),
        sa.Column("files_scanned", sa.Integer(), nullable=True),
        sa.Column("output_location", sa.String(1024), nullable=True),
        sa.Column("as_of", sa.String(64), nullable=True),
        sa.Column("snapshots", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("query_id", name="pk_query_executions"),
    )
    op.create_index("ix_query_executions_submitted_at", "query_executions", ["submitted_at"])
    op.create_index(
        "ix_query_executions_workgroup_submitted_at",
        "query_executions",
        ["workgroup", "submitted_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_query_executions_workgroup_submitted_at", table_name="query_executions")
    op.drop_index("ix_query_executions_submitted_at", table_name="query_executions")
    op.drop_table("query_executions")
