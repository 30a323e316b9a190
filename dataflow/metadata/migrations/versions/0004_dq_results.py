"""Data quality: every ruleset evaluation, its rule outcomes and its metrics.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A frozen copy of the schema at its time (see 0001): columns are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "dq_evaluations",
        sa.Column("result_id", sa.String(64), nullable=False),
        sa.Column("ruleset_name", sa.String(255), nullable=False),
        sa.Column("ruleset_hash", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(1024), nullable=False),
        sa.Column("snapshot_id", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("evaluation_context", sa.String(255), nullable=False),
        sa.Column("started_on", ts, nullable=False),
        sa.Column("completed_on", ts, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rules_passed", sa.Integer(), nullable=False),
        sa.Column("rules_failed", sa.Integer(), nullable=False),
        sa.Column("rules_errored", sa.Integer(), nullable=False),
        sa.Column("aggregated_metrics", sa.JSON(), nullable=False),
        sa.Column("analyzer_results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("result_id", name="pk_dq_evaluations"),
    )
    op.create_index(
        "ix_dq_evaluations_dataset_completed_on", "dq_evaluations", ["dataset", "completed_on"]
    )
    op.create_index("ix_dq_evaluations_run_id", "dq_evaluations", ["run_id"])
    op.create_table(
        "dq_rule_results",
        sa.Column("result_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("result", sa.String(10), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("evaluated_metrics", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["dq_evaluations.result_id"],
            name="fk_dq_rule_results_result_id_dq_evaluations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("result_id", "seq", name="pk_dq_rule_results"),
    )
    op.create_table(
        "dq_metrics",
        sa.Column("id", big_id, nullable=False),
        sa.Column("result_id", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(1024), nullable=False),
        sa.Column("ruleset_name", sa.String(255), nullable=False),
        sa.Column("evaluation_context", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("recorded_at", ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["dq_evaluations.result_id"],
            name="fk_dq_metrics_result_id_dq_evaluations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dq_metrics"),
    )
    op.create_index(
        "ix_dq_metrics_series",
        "dq_metrics",
        ["dataset", "ruleset_name", "evaluation_context", "key", "recorded_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_dq_metrics_series", table_name="dq_metrics")
    op.drop_table("dq_metrics")
    op.drop_table("dq_rule_results")
    op.drop_index("ix_dq_evaluations_run_id", table_name="dq_evaluations")
    op.drop_index("ix_dq_evaluations_dataset_completed_on", table_name="dq_evaluations")
    op.drop_table("dq_evaluations")
