"""External tables of the crawler: tables, their versions, partitions and crawled files.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02

A frozen copy of the schema at its time (see 0001): columns are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARENT = ["external_tables.database", "external_tables.name"]


def _child_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["database", "name"],
        _PARENT,
        name=f"fk_{table}_database_external_tables",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "external_tables",
        sa.Column("database", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(50), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("partition_keys", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("last_crawled_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("database", "name", name="pk_external_tables"),
    )
    op.create_table(
        "external_table_versions",
        sa.Column("database", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(50), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("partition_keys", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("archived_at", ts, nullable=False),
        _child_fk("external_table_versions"),
        sa.PrimaryKeyConstraint("database", "name", "version", name="pk_external_table_versions"),
    )
    op.create_table(
        "external_partitions",
        sa.Column("database", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("values_key", sa.String(1024), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        _child_fk("external_partitions"),
        sa.PrimaryKeyConstraint("database", "name", "values_key", name="pk_external_partitions"),
    )
    op.create_table(
        "external_files",
        sa.Column("database", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("modified", ts, nullable=True),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("crawled_at", ts, nullable=False),
        _child_fk("external_files"),
        sa.PrimaryKeyConstraint("database", "name", "key", name="pk_external_files"),
    )


def downgrade() -> None:
    op.drop_table("external_files")
    op.drop_table("external_partitions")
    op.drop_table("external_table_versions")
    op.drop_table("external_tables")
