"""What a Spark session needs on this machine, found and checked before Spark starts.

Only package indexes and Debian are reachable where Dataflow is built and tested, so Spark's own
download of jars (``spark.jars.packages``) is never used. The pieces come from the project's own
install files instead (``pip install 'dataflow-etl[spark]'`` and ``scripts/system-deps.sh``):

- Java 17 (Debian ``openjdk-17-jre-headless``) — Spark 3.5 runs on it;
- pyspark 3.5 (the ``spark`` extra);
- Iceberg's Spark runtime jar, shipped inside the ``snowpark-connect-deps-iceberg`` package of the
  same extra. Its sha256 is checked once per process (cached by size and mtime): a jar that is
  not the one pinned is refused rather than half-working;
- the JDBC driver of the catalog database (Debian ``libxerial-sqlite-jdbc-java``,
  ``libpostgresql-jdbc-java``).

Every problem is one :class:`~dataflow.errors.ConfigError` naming the missing piece and the fix.

Example:
    >>> RUNTIME_JAR
    'iceberg-spark-runtime-3.5_2.12-1.10.2.jar'
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from dataflow.errors import ConfigError

EXTRA_HINT = "pip install 'dataflow-etl[spark]'"
"""The command that installs pyspark and the Iceberg runtime jar."""
SYSTEM_HINT = "bash scripts/system-deps.sh (or apt-get install {package})"
JAR_PACKAGE = "snowpark_connect_deps_iceberg"
"""The installed Python package whose ``jars/`` folder holds Iceberg's Spark runtime."""
RUNTIME_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
RUNTIME_SHA256 = "c562d482dcd16b666e808b755469fbc4b2604284b41622c9d87e2c02b7cc6c5f"
"""Why pinned: 1.0.3 of the package ships a runtime jar without its shaded Jackson classes
(``NoClassDefFoundError`` at the first catalog call); 1.0.2 carries Iceberg 1.10.2, checked."""
JDBC_JARS = {
    "sqlite": ("/usr/share/java/xerial-sqlite-jdbc.jar", "libxerial-sqlite-jdbc-java"),
    "postgresql": ("/usr/share/java/postgresql.jar", "libpostgresql-jdbc-java"),
}
"""Catalog database kind -> (driver jar, Debian package)."""

_verified: dict[str, tuple[int, int]] = {}
"""Jar path -> (size, mtime_ns) whose checksum was verified in this process."""


def java_home() -> str:
    """The ``JAVA_HOME`` Spark will use (set, or found from ``java`` on the PATH).

    Raises:
        ConfigError: no Java runtime.
    """
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return home
    java = shutil.which("java")
    if java is None:
        raise ConfigError(
            "engine spark needs Java 17 and none was found — run "
            + SYSTEM_HINT.format(package="openjdk-17-jre-headless")
            + " or set JAVA_HOME"
        )
    return str(Path(java).resolve().parent.parent)


def check_pyspark() -> None:
    """Fail clearly when pyspark is not installed (it is imported only after this)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"engine spark needs pyspark, which is not installed — {EXTRA_HINT}"
        ) from None


def runtime_jar() -> Path:
    """Iceberg's Spark runtime jar, its sha256 verified (once per process and file version).

    Raises:
        ConfigError: the package or the jar is missing, or its checksum is not the pinned one.

    Example:
        >>> runtime_jar().name  # doctest: +SKIP
        'iceberg-spark-runtime-3.5_2.12-1.10.2.jar'
    """
    spec = importlib.util.find_spec(JAR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"engine spark needs Iceberg's Spark runtime jar (package {JAR_PACKAGE}), which is "
            f"not installed — {EXTRA_HINT}"
        )
    jar = Path(next(iter(spec.submodule_search_locations))) / "jars" / RUNTIME_JAR
    return verify_jar(jar)


def verify_jar(jar: Path, sha256: str = RUNTIME_SHA256) -> Path:
    """``jar`` when its sha256 is ``sha256`` (cached by size and mtime for this process).

    Raises:
        ConfigError: the file is missing or its checksum differs.
    """
    try:
        stat = jar.stat()
    except OSError:
        raise ConfigError(f"{jar}: Iceberg's Spark runtime jar is missing — {EXTRA_HINT}") from None
    stamp = (stat.st_size, stat.st_mtime_ns)
    if _verified.get(str(jar)) == stamp:
        return jar
    digest = hashlib.sha256()
    with jar.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ConfigError(
            f"{jar}: checksum {digest.hexdigest()[:12]}… is not the pinned {sha256[:12]}… — "
            f"reinstall it: pip install --force-reinstall 'dataflow-etl[spark]'"
        )
    _verified[str(jar)] = stamp
    return jar


def jdbc_jar(kind: str) -> Path:
    """The JDBC driver jar of the catalog database ``kind`` (``sqlite`` or ``postgresql``).

    Raises:
        ConfigError: another database, or the driver is not installed.
    """
    if kind not in JDBC_JARS:
        raise ConfigError(
            f"engine spark reaches the Iceberg SQL catalog over JDBC: {kind} is not supported "
            "— use a SQLite or PostgreSQL catalog"
        )
    path, package = JDBC_JARS[kind]
    if not Path(path).is_file():
        raise ConfigError(
            f"engine spark needs the {kind} JDBC driver ({path}) — "
            + SYSTEM_HINT.format(package=package)
        )
    return Path(path)


def spark_home() -> Path:
    """The installed pyspark folder (``SPARK_HOME``: ``bin/spark-class``, ``jars/``)."""
    check_pyspark()
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


__all__ = [
    "EXTRA_HINT",
    "JDBC_JARS",
    "RUNTIME_JAR",
    "RUNTIME_SHA256",
    "check_pyspark",
    "java_home",
    "jdbc_jar",
    "runtime_jar",
    "spark_home",
    "verify_jar",
]
