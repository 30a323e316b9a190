"""The project that owns the database: one row, claimed by the first project that opens it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

An existing database gets the table empty; the project that opens it next adopts it
(:meth:`dataflow.metadata.db.MetadataDB.migrate`), and any other project is refused from then on.
On PostgreSQL each project has its own schema; tables an older version created in ``public`` are
moved into the schema of the first project that opens the database, before this revision runs.

A frozen copy of the schema at its time (see 0001): columns are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataflow_project",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dataflow_project"),
    )


def downgrade() -> None:
    op.drop_table("dataflow_project")
