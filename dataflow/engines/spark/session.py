"""The Spark session of a project: one JVM per process, one session per engine.

The session reaches the same Iceberg tables as pyiceberg through the same catalog database:
Iceberg's ``JdbcCatalog`` over the SQLite file (or PostgreSQL database) the SQL catalog writes,
under the catalog name ``dataflow`` (the ``catalog_name`` column of pyiceberg's rows). Tables
are never cached (``cache-enabled=false``): pyiceberg creates tables and moves branches between
Spark statements, and each statement must see the catalog as it is.

The JVM (a ``SparkContext``) is started once per process and master; each engine gets its own
``newSession()``, so two projects in one process keep their catalogs apart.

Example:
    >>> jdbc_uri("sqlite:////wh/dataflow.db")
    ('jdbc:sqlite:/wh/dataflow.db', 'sqlite', {})
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from dataflow.engines.spark import runtime
from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from dataflow.config import Settings

log = logging.getLogger("dataflow.engines.spark")

CATALOG = "dataflow"
"""Spark catalog name = pyiceberg's catalog name (rows of ``iceberg_tables`` carry it)."""
MASTER_TIMEOUT = 30.0
"""Seconds within which an unreachable ``spark://`` master is reported."""
S3_HINT = (
    "S3 from Spark needs the iceberg-aws-bundle and hadoop-aws jars, which this build cannot "
    "install — run engine: spark on a local warehouse here, or on a cluster that ships those jars "
    "(see docs/engines.md, 'S3')"
)


class _Jvm:
    """The process's root session (its JVM) and the master and conf it was started with."""

    lock = threading.Lock()
    root: SparkSession | None = None
    key: tuple[str, ...] = ()


def jdbc_uri(url: str) -> tuple[str, str, dict[str, str]]:
    """(JDBC URL, database kind, catalog properties with the credentials) of a catalog URL.

    Raises:
        ConfigError: a database other than SQLite or PostgreSQL.
    """
    from dataflow.metadata.db import ADOPT_PARAM, PROJECT_PARAM, SCHEMA_PARAM, project_schema

    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    params = dict(parse_qsl(parts.query))
    # Dataflow's own parameters: the project's PostgreSQL schema is the JDBC currentSchema.
    project = params.pop(PROJECT_PARAM, None)
    schema = params.pop(SCHEMA_PARAM, None)
    params.pop(ADOPT_PARAM, None)
    if scheme == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path  # sqlite:////abs -> /abs
        return f"jdbc:sqlite:{path}", "sqlite", {}
    if scheme in {"postgresql", "postgres"}:
        host = parts.hostname or "127.0.0.1"
        port = f":{parts.port}" if parts.port else ""
        if schema or project:
            params["currentSchema"] = schema or project_schema(project or "")
        query = f"?{urlencode(params)}" if params else ""
        props: dict[str, str] = {}
        if parts.username:
            props["jdbc.user"] = unquote(parts.username)
        if parts.password:
            props["jdbc.password"] = unquote(parts.password)
        return f"jdbc:postgresql://{host}{port}{parts.path}{query}", "postgresql", props
    raise ConfigError(
        f"engine spark reaches the Iceberg catalog over JDBC: a {scheme} catalog database is not "
        "supported — use a SQLite or PostgreSQL catalog"
    )


def catalog_conf(settings: Settings) -> tuple[dict[str, str], str]:
    """Session properties of the ``dataflow`` catalog, and the JDBC driver kind it needs."""
    from dataflow.catalog.iceberg import warehouse_location

    if settings.warehouse_is_remote:
        raise ConfigError(f"warehouse {settings.warehouse}: {S3_HINT}")
    if settings.catalog.type != "sql":
        raise ConfigError(
            f"engine spark supports the sql catalog (SQLite or PostgreSQL), not "
            f"{settings.catalog.type.value} — set catalog.type: sql or engine: duckdb"
        )
    url = settings.catalog.url.get_secret_value() if settings.catalog.url else None
    uri, kind, props = jdbc_uri(url or settings.metadata_url)
    prefix = f"spark.sql.catalog.{CATALOG}"
    conf = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        f"{prefix}.uri": uri,
        f"{prefix}.jdbc.schema-version": "V1",
        f"{prefix}.warehouse": warehouse_location(settings),
        f"{prefix}.cache-enabled": "false",
        # pyiceberg creates the catalog tables; Iceberg's own check leaves a SQLite read open,
        # which pins one pooled connection to a stale snapshot (new tables "not found").
        f"{prefix}.init-catalog-tables": "false",
    }
    conf.update({f"{prefix}.{k}": v for k, v in props.items()})
    return conf, kind


def check_master(master: str, timeout: float = MASTER_TIMEOUT) -> None:
    """Fail within ``timeout`` seconds when a ``spark://host:port`` master does not answer.

    Raises:
        ConfigError: the master's port refuses or does not answer.
    """
    if not master.startswith("spark://"):
        return
    for hostport in master[len("spark://") :].split(","):
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise ConfigError(
        f"spark.master {master} is unreachable — start the Spark master, or fix spark.master "
        "(env DATAFLOW__SPARK__MASTER)"
    )


def check_ready(settings: Settings) -> None:
    """Everything a session needs, checked without starting one (``dataflow validate``).

    Raises:
        ConfigError: as :func:`session`.
    """
    runtime.check_pyspark()
    _, kind = catalog_conf(settings)
    runtime.runtime_jar()
    runtime.jdbc_jar(kind)
    runtime.java_home()
    check_master(settings.spark.master)


def session(settings: Settings) -> SparkSession:
    """A new Spark session for ``settings``' project (the JVM is shared within the process).

    Raises:
        ConfigError: Java, pyspark, the runtime jar or the JDBC driver is missing, the master is
            unreachable, or the warehouse is on S3.
    """
    runtime.check_pyspark()
    conf, kind = catalog_conf(settings)
    jars = [str(runtime.runtime_jar()), str(runtime.jdbc_jar(kind))]
    for other, (path, _) in runtime.JDBC_JARS.items():
        if other != kind and os.path.isfile(path):
            jars.append(path)  # the JVM's class path is fixed at start: take both drivers
    os.environ.setdefault("JAVA_HOME", runtime.java_home())
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    master = settings.spark.master
    check_master(master)
    key = (master, *(f"{k}={v}" for k, v in sorted(settings.spark.conf.items())))
    with _Jvm.lock:
        if _Jvm.root is not None and _Jvm.key != key:
            _Jvm.root.stop()
            _Jvm.root = None
        if _Jvm.root is None:
            _Jvm.root = _start(master, jars, settings.spark.conf)
            _Jvm.key = key
        spark = _Jvm.root.newSession()
    for name, value in conf.items():
        spark.conf.set(name, value)
    return spark


def _python() -> str:
    import sys

    return sys.executable


def _start(master: str, jars: list[str], user_conf: dict[str, str]) -> SparkSession:
    from pyspark.sql import SparkSession

    classpath = os.pathsep.join(jars)
    builder = SparkSession.builder.master(master).appName("dataflow")
    base: dict[str, Any] = {
        "spark.driver.extraClassPath": classpath,
        "spark.executor.extraClassPath": classpath,
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # Batches are bounded (transform.batch_files): few partitions, few tiny tasks.
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1" if master.startswith(("local", "spark://127.")) else "",
    }
    base.update(user_conf)
    for name, value in base.items():
        if value != "":
            builder = builder.config(name, value)
    if master.startswith(("local", "spark://127.")):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM could not start: Java, memory, master
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Spark could not start on {master} ({first}) — check Java") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def stop() -> None:
    """Stop the process's Spark JVM (the next :func:`session` starts another)."""
    with _Jvm.lock:
        if _Jvm.root is not None:
            _Jvm.root.stop()
            _Jvm.root = None


__all__ = ["CATALOG", "S3_HINT", "catalog_conf", "check_master", "jdbc_uri", "session", "stop"]
