"""The metadata database: engine, transactions and automatic migrations.

One SQLAlchemy engine per :class:`MetadataDB`. SQLite (the default, a file in the warehouse)
gets WAL mode, a busy timeout and foreign keys, and real transactions: Python's ``sqlite3``
module does not ``BEGIN`` before DDL or SELECT on its own (legacy transaction control), so we
emit ``BEGIN`` ourselves, ``BEGIN IMMEDIATE`` for writes, which takes SQLite's write lock up
front instead of failing half-way when another process wrote in between.

Any other SQLAlchemy URL works as well (PostgreSQL is tested); ``postgresql://`` uses psycopg 3.

Every row belongs to one project. A project's URL (``Settings.metadata_url``) names it in the
query parameter ``dataflow_project``, which is read and removed before connecting:

* on PostgreSQL each project gets its own schema (``dataflow_<name>``, or ``metadata.schema``):
  every connection's ``search_path`` is that schema, so Alembic's version table, the metadata
  tables and pyiceberg's SQL catalog tables all live in it and no query needs to change. Tables
  an older version created in ``public`` are moved into the schema of the first project that
  opens the database (it adopts them);
* in every database (SQLite file or PostgreSQL schema) the table ``dataflow_project`` records the
  owner: the first project to open it claims it, and any other project is refused with one line
  (:class:`~dataflow.errors.ConfigError`, exit 2) unless ``metadata.adopt`` is set.

Example:
    >>> import tempfile, sqlalchemy as sa
    >>> db = open_metadata(f"sqlite:///{tempfile.mkdtemp()}/dataflow.db")
    >>> with db.begin() as conn:
    ...     conn.execute(sa.text("select count(*) from runs")).scalar_one()
    0
    >>> db.dispose()
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc

from dataflow.errors import ConfigError, MetadataError
from dataflow.metadata.schema import VERSION_TABLE, metadata, project_owner, utcnow

log = logging.getLogger("dataflow.metadata")

#: Milliseconds a SQLite statement waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Any constant works; it only has to be the same in every process migrating one database.
_PG_MIGRATION_LOCK = 0x64617461666C6F77  # "dataflow"

_BEGIN_OPTION = "dataflow_sqlite_begin"

#: Query parameters of a project's metadata URL; read and removed before connecting.
PROJECT_PARAM = "dataflow_project"
SCHEMA_PARAM = "dataflow_schema"
ADOPT_PARAM = "dataflow_adopt"

#: pyiceberg's SQL catalog tables: they move with the project's metadata tables.
ICEBERG_CATALOG_TABLES = ("iceberg_tables", "iceberg_namespace_properties")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def project_url(url: str, project: str, *, schema: str | None = None, adopt: bool = False) -> str:
    """The metadata URL of one project: ``url`` plus the parameters :class:`MetadataDB` reads.

    Example:
        >>> project_url("sqlite:////wh/dataflow.db", "demo")
        'sqlite:////wh/dataflow.db?dataflow_project=demo'
    """
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError:
        return url  # MetadataDB reports it, without repeating the text
    query: dict[str, str] = {PROJECT_PARAM: project}
    if schema:
        query[SCHEMA_PARAM] = schema
    if adopt:
        query[ADOPT_PARAM] = "true"
    return parsed.update_query_dict(query).render_as_string(hide_password=False)


def project_schema(project: str) -> str:
    """The PostgreSQL schema of a project: ``dataflow_`` and its name, made a safe identifier.

    A name that is not already lowercase letters, digits and ``_`` (or is long) gets a short hash,
    so two different names never share a schema.

    Example:
        >>> project_schema("market_eu"), project_schema("Market EU")
        ('dataflow_market_eu', 'dataflow_market_eu_900f93db')
    """
    slug = re.sub(r"[^a-z0-9_]+", "_", project.lower()).strip("_") or "project"
    if slug != project or len(slug) > 40:
        digest = hashlib.sha256(project.encode()).hexdigest()[:8]
        slug = f"{slug[:40]}_{digest}"
    return f"dataflow_{slug}"


class MetadataDB:
    """A connection to the metadata database.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:////abs/path/dataflow.db`` or
            ``postgresql://user@host/db``. The folder of a SQLite file is created.

    Raises:
        ConfigError: the URL cannot be parsed or its driver is not installed.
        MetadataError: the folder of a SQLite file cannot be created.

    Example:
        >>> db = MetadataDB("sqlite://")  # in memory
        >>> db.engine.dialect.name
        'sqlite'
    """

    def __init__(self, url: str) -> None:
        parsed = _parse_url(url)
        query = dict(parsed.query)
        project = query.pop(PROJECT_PARAM, None)
        schema = query.pop(SCHEMA_PARAM, None)
        adopt = query.pop(ADOPT_PARAM, "false")
        parsed = parsed.set(query=query)
        self.url = parsed
        #: The project every row belongs to; ``None``: a bare URL (tests, tools), no ownership.
        self.project: str | None = project if isinstance(project, str) else None
        self.adopt = isinstance(adopt, str) and adopt.lower() in {"1", "true", "yes", "on"}
        #: The PostgreSQL schema of the project (``None``: the connection's own search_path).
        self.schema: str | None = None
        if parsed.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(parsed)
            return
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            explicit = schema if isinstance(schema, str) else None
            self.schema = _choose_schema(parsed, self.project, explicit)
            if self.schema is not None:
                options = str(query.get("options") or "")
                connect_args["options"] = f"{options} -csearch_path={self.schema}".strip()
        try:
            self.engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        except (exc.NoSuchModuleError, ImportError) as err:
            raise ConfigError(_driver_hint(parsed)) from err

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, fit for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"MetadataDB({self.safe_url!r})"

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error.

        On SQLite the transaction is ``BEGIN IMMEDIATE``: it holds the write lock from the first
        statement, so read-then-write sequences cannot be overtaken by another process.

        Raises:
            MetadataError: the database cannot be reached, is locked for too long, or is full.

        Example:
            >>> db = open_metadata("sqlite://")
            >>> with db.begin() as conn:
            ...     _ = conn.execute(sa.text("select 1"))
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn
        except exc.OperationalError as err:
            raise MetadataError(
                f"metadata database {self.safe_url}: {_short(err)} — check that it is reachable "
                "and writable (metadata.url)"
            ) from err

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection inside one read transaction (plain ``BEGIN``: it never waits for writers).

        Example:
            >>> db = open_metadata("sqlite://")
            >>> with db.read() as conn:
            ...     conn.execute(sa.text("select count(*) from watermarks")).scalar_one()
            0
        """
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except exc.OperationalError as err:
            raise MetadataError(
                f"metadata database {self.safe_url}: {_short(err)} — check that it is reachable "
                "(metadata.url)"
            ) from err

    def migrate(self) -> None:
        """Bring the schema to the newest revision (``alembic upgrade head``).

        Idempotent. Safe when several processes call it at once: the whole upgrade runs in one
        transaction that holds SQLite's write lock (or a PostgreSQL advisory lock), and the
        current revision is read only once that lock is held.

        Example:
            >>> db = MetadataDB("sqlite://")
            >>> db.migrate(); db.migrate()
            >>> db.current_revision() == head_revision()
            True
        """
        with self.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
                if self.schema is not None:
                    self._prepare_schema(conn)
            current = _current(conn)
            head = head_revision()
            if current != head:
                # A new database is not news on the console; an upgrade of one in use is.
                log.log(
                    logging.DEBUG if current is None else logging.INFO,
                    "migrating metadata database %s from %s to %s",
                    self.safe_url,
                    current,
                    head,
                )
                config = alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            if self.project is not None:
                self._claim(conn)

    @property
    def where(self) -> str:
        """The database (and schema) in words, for messages: never a password."""
        if self.schema is not None:
            return f"schema {self.schema} of {self.safe_url}"
        return self.safe_url

    def owner(self) -> str | None:
        """The project that owns this database (or schema), ``None`` before one claimed it."""
        with self.read() as conn:
            if not sa.inspect(conn).has_table(project_owner.name):
                return None
            name = conn.execute(sa.select(project_owner.c.name)).scalar_one_or_none()
        return str(name) if name is not None else None

    def lock_key(self) -> int:
        """A 64-bit key naming this project's run lock (PostgreSQL advisory locks).

        Advisory locks are per database, so the key only has to tell projects apart in it.

        Example:
            >>> MetadataDB("sqlite://").lock_key() == MetadataDB("sqlite://").lock_key()
            True
        """
        ident = f"dataflow-run:{self.schema or ''}:{self.project or ''}"
        return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "big", signed=True)

    def _prepare_schema(self, conn: sa.Connection) -> None:
        """Create the project's schema; move in the tables an older version left in ``public``."""
        schema = self.schema
        assert schema is not None
        inspector = sa.inspect(conn)
        if schema in inspector.get_schema_names() and inspector.has_table(
            VERSION_TABLE, schema=schema
        ):
            return
        try:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except exc.ProgrammingError as err:  # e.g. no CREATE privilege on the database
            raise ConfigError(
                f"cannot create the schema {schema} of project {self.project!r} in "
                f"{self.safe_url} ({_short(err)}) — grant the user CREATE on the database, or "
                "create the schema yourself (and name it in metadata.schema_name)"
            ) from err
        if not inspector.has_table(VERSION_TABLE, schema="public"):
            return
        ours = {*metadata.tables, VERSION_TABLE, *ICEBERG_CATALOG_TABLES}
        legacy = [t for t in inspector.get_table_names(schema="public") if t in ours]
        log.warning(
            "moving %d table(s) of the metadata database %s from schema public into %s: "
            "project %r adopts them",
            len(legacy),
            self.safe_url,
            schema,
            self.project,
        )
        for table in legacy:
            # Indexes, constraints and owned sequences move with the table.
            conn.exec_driver_sql(f'ALTER TABLE public."{table}" SET SCHEMA "{schema}"')

    def _claim(self, conn: sa.Connection) -> None:
        """Record this project as the owner, or refuse a database another project owns."""
        project = self.project
        assert project is not None
        owner = conn.execute(sa.select(project_owner.c.name)).scalar_one_or_none()
        values = {"name": project, "claimed_at": utcnow(), "host": socket.gethostname()}
        if owner is None:
            conn.execute(sa.insert(project_owner).values(id=1, **values))
            return
        if owner == project:
            return
        if not self.adopt:
            raise ConfigError(
                f"the metadata database ({self.where}) belongs to project {owner!r}, not "
                f"{project!r} — give this project its own metadata.url, or set metadata.adopt: "
                "true (env DATAFLOW__METADATA__ADOPT=true) to take it over"
            )
        log.warning(
            "project %r takes over the metadata database %s from project %r (metadata.adopt)",
            project,
            self.where,
            owner,
        )
        conn.execute(sa.update(project_owner).values(**values))

    def connect_url(self) -> str:
        """The URL other tools use to reach the same tables: the project's schema as the
        ``search_path`` (PostgreSQL), without Dataflow's own parameters. Holds the password.

        Example:
            >>> MetadataDB("sqlite:////wh/dataflow.db?dataflow_project=demo").connect_url()
            'sqlite:////wh/dataflow.db'
        """
        url = self.url
        if self.schema is not None:
            options = str(url.query.get("options") or "")
            url = url.update_query_dict(
                {"options": f"{options} -csearch_path={self.schema}".strip()}
            )
        return url.render_as_string(hide_password=False)

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        with self.read() as conn:
            return _current(conn)

    def dispose(self) -> None:
        """Close every pooled connection (call when done, and in a child after ``fork``)."""
        self.engine.dispose()


def open_metadata(url: str) -> MetadataDB:
    """Open the metadata database and migrate it to the newest schema.

    Nothing is cached: each call makes a new engine; call :meth:`MetadataDB.dispose` when done.

    Example:
        >>> db = open_metadata("sqlite://")
        >>> db.current_revision() == head_revision()
        True
    """
    db = MetadataDB(url)
    try:
        db.migrate()
    except BaseException:
        db.dispose()
        raise
    return db


def alembic_config() -> Config:
    """An Alembic configuration for the migrations shipped inside the package (no alembic.ini).

    Pass a connection in ``config.attributes["connection"]``, or set ``sqlalchemy.url``.

    Example:
        >>> alembic_config().get_main_option("script_location")
        'dataflow.metadata:migrations'
    """
    config = Config()
    config.set_main_option("script_location", "dataflow.metadata:migrations")
    # Without it Alembic warns (and our tests turn warnings into errors).
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_table", VERSION_TABLE)
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of Dataflow."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise MetadataError("no metadata migrations found in the package — reinstall dataflow")
    return head


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``."""
    return Path(str(resources.files("dataflow.metadata") / "migrations"))


# --- internals -----------------------------------------------------------------------------------


def _current(conn: sa.Connection) -> str | None:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _choose_schema(url: sa.URL, project: str | None, explicit: str | None) -> str | None:
    """The schema a project's connections use: explicit, derived from its name, or none."""
    if explicit is not None:
        if not _SCHEMA_NAME.match(explicit):
            raise ConfigError(
                f"metadata.schema_name {explicit!r} is not a plain PostgreSQL name — use lowercase "
                "letters, digits and _ (at most 63)"
            )
        return explicit
    if project is None or "search_path" in str(url.query.get("options") or ""):
        return None  # a bare URL, or one whose options pin the schema: the user chose
    return project_schema(project)


def _parse_url(url: str) -> sa.URL:
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError:
        # The text may hold a password: never repeat it.
        raise ConfigError(
            "metadata.url is not a SQLAlchemy URL — use e.g. sqlite:////path/dataflow.db or "
            "postgresql://user@host/db"
        ) from None
    if parsed.drivername in {"postgresql", "postgres"}:
        # SQLAlchemy 2.0 defaults to psycopg2; we depend on psycopg 3 (extra "postgres").
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _driver_hint(url: sa.URL) -> str:
    backend = url.get_backend_name()
    extra = (
        " — install it with: pip install 'dataflow-etl[postgres]'"
        if backend == "postgresql"
        else ""
    )
    return f"metadata.url: no database driver for {url.drivername!r}{extra}"


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database
    in_memory = not database or database == ":memory:" or url.query.get("mode") == "memory"
    if not in_memory and database is not None:
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MetadataError(
                f"cannot create {folder} for the metadata database ({err.strerror}) — check the "
                "warehouse path and its permissions"
            ) from err
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from sqlite3 (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                # Readers never block the writer and the writer never blocks readers.
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def _short(err: exc.DBAPIError) -> str:
    """The driver's message without SQLAlchemy's statement and parameters."""
    return str(err.orig).strip().splitlines()[0] if err.orig is not None else type(err).__name__


__all__ = [
    "ICEBERG_CATALOG_TABLES",
    "MetadataDB",
    "alembic_config",
    "head_revision",
    "migrations_dir",
    "open_metadata",
    "project_schema",
    "project_url",
]
