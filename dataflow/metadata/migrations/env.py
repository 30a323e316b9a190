"""Alembic environment of the metadata database.

Dataflow runs migrations itself (:meth:`dataflow.metadata.MetadataDB.migrate`) and hands the
connection, already inside a locked transaction, in ``config.attributes["connection"]``. For
writing a new revision by hand, ``sqlalchemy.url`` may be set instead::

    from alembic import command
    from dataflow.metadata.db import alembic_config
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", "sqlite:////tmp/dev.db")
    command.revision(cfg, "add a table", autogenerate=True)
"""

from __future__ import annotations

from alembic import context

from dataflow.metadata.schema import VERSION_TABLE, metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_offline() -> None:
    """Emit SQL text instead of executing it (``alembic upgrade --sql``)."""
    _configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run against the connection Dataflow passed in, or one made from ``sqlalchemy.url``."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from dataflow.metadata.db import MetadataDB

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
    db = MetadataDB(url)
    try:
        with db.begin() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        db.dispose()


# Alembic runs this file as a script; importing it elsewhere (doc tests, tools) does nothing.
if hasattr(context, "config"):
    if context.is_offline_mode():
        run_offline()
    else:
        run_online()
