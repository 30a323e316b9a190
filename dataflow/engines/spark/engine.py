"""The Spark engine: the models as Spark SQL, Iceberg commits with ``MERGE INTO``.

The same project runs unchanged: the SQL models (DuckDB dialect) are translated by
:mod:`dataflow.engines.spark.dialect`, the tables are the ones pyiceberg reads and writes,
reached through the same catalog database (:mod:`dataflow.engines.spark.session`).

Data crosses between Python and the JVM as Parquet files in an exchange folder inside the
warehouse (``<warehouse>/.spark-exchange/``: every executor that writes the tables sees it), never
as Python objects row by row; the folder is removed when the engine closes.

The upsert (:meth:`SparkEngine.upsert`) is one ``MERGE INTO`` (copy-on-write, as the tables are
configured): the batch is de-duplicated on the key (latest ``_received_at``, then ``_raw_key``,
``_raw_line``, ``_record_path`` wins), a matched row is replaced only by a strictly newer one, a
new key is inserted. The caller's snapshot properties (the transform bookmark) ride on that same
commit through Iceberg's ``CommitMetadata`` (set on the driver thread that runs the statement),
so rows and bookmark are visible together or not at all. ``branch`` writes to the Iceberg branch
(``<table>.branch_<name>``) the quality gate audits.

Example:
    >>> engine = SparkEngine(settings=settings)  # doctest: +SKIP
    >>> engine.sql("SELECT 1 AS one").to_pylist()  # doctest: +SKIP
    [{'one': 1}]
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataflow.engines.base import CONTRACT_DIALECT, EngineCapabilities, WriteResult, run_over
from dataflow.engines.spark import session as spark_session
from dataflow.engines.spark.dialect import model_name, to_spark
from dataflow.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyspark.sql import SparkSession

    from dataflow.config import Settings

LINEAGE_ORDER = ("_received_at", "_raw_key", "_raw_line", "_record_path")
"""Columns that decide which of two rows with the same key wins, most significant first."""
_COMMIT_METADATA = "org.apache.iceberg.spark.CommitMetadata"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class SparkEngine:
    """Apache Spark, from ``local[*]`` to a cluster (``spark.master``).

    Args:
        settings: the project's settings (catalog, warehouse, ``spark.master``, ``spark.conf``).

    Raises:
        ConfigError: a set-up problem (Java, pyspark, jar, JDBC driver, master, S3), one line.
    """

    name = "spark"
    capabilities = EngineCapabilities(
        dialect="spark", distributed=True, json_functions=False, lambdas=True
    )

    def __init__(self, *, settings: Settings | None = None) -> None:
        if settings is None:
            raise ConfigError("engine spark needs the project's settings (get_engine(settings=…))")
        self._settings = settings
        self._spark: SparkSession = spark_session.session(settings)
        self._exchange = Path(settings.warehouse_uri) / ".spark-exchange" / uuid.uuid4().hex
        self._exchange.mkdir(parents=True, exist_ok=True)
        self._views: dict[str, Path] = {}

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spark(self) -> SparkSession:
        """The engine's Spark session."""
        return self._spark

    # --- relations and SQL -----------------------------------------------------------------------

    def register(self, name: str, data: pa.Table) -> None:
        """Make ``data`` queryable as the temporary view ``name`` (read by Spark from Parquet)."""
        self.unregister(name)
        folder = self._exchange / f"in-{name}-{uuid.uuid4().hex}"
        folder.mkdir()
        pq.write_table(data, folder / "part-0.parquet")
        self._spark.read.parquet(str(folder)).createOrReplaceTempView(name)
        self._views[name] = folder

    def unregister(self, name: str) -> None:
        """Forget the view ``name``."""
        folder = self._views.pop(name, None)
        if folder is not None:
            self._spark.catalog.dropTempView(name)
            shutil.rmtree(folder, ignore_errors=True)

    def sql(self, text: str, *, dialect: str = CONTRACT_DIALECT) -> pa.Table:
        """Run one statement (translated to Spark SQL) and return its rows as Arrow.

        Raises:
            ModelError: the statement failed (the model and Spark's first line named).
        """
        spark_sql = to_spark(text) if dialect == CONTRACT_DIALECT else text
        with self._errors(text):
            frame = self._spark.sql(spark_sql)
            if not frame.columns:
                return pa.table({})
            return self._collect(frame)

    def run_model(self, text: str, *, relations: Mapping[str, pa.Table]) -> pa.Table:
        """Run a model's SELECT over ``relations`` (registered under their names)."""
        return run_over(self, text, relations)

    def close(self) -> None:
        """Drop the engine's views and exchange files (the process's JVM stays for reuse)."""
        for name in list(self._views):
            with contextlib.suppress(Exception):
                self.unregister(name)
        shutil.rmtree(self._exchange, ignore_errors=True)

    def _collect(self, frame: Any) -> pa.Table:
        folder = self._exchange / f"out-{uuid.uuid4().hex}"
        frame.write.parquet(str(folder))
        table = pq.read_table(folder)
        shutil.rmtree(folder, ignore_errors=True)
        # Spark marks columns it proves non-null as required; DuckDB never does. Tables are
        # created from these schemas, so both engines must give the same (nullable) ones.
        schema = pa.schema([field.with_nullable(True) for field in table.schema])
        return table.cast(schema)

    @contextlib.contextmanager
    def _errors(self, text: str) -> Iterator[None]:
        """Spark's and Py4J's errors as one :class:`ModelError` line."""
        try:
            yield
        except (ModelError, ConfigError):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("pyspark", "py4j")):
                java = getattr(exc, "java_exception", None)
                message = str(java.toString() if java is not None else exc).strip().splitlines()
                first = next((line for line in message if line.strip()), type(exc).__name__)
                raise ModelError(f"{model_name(text)} failed on Spark: {first[:400]}") from None
            raise

    # --- Iceberg ---------------------------------------------------------------------------------

    def identifier(self, table: Table, branch: str | None = None) -> str:
        """The Spark name of a pyiceberg table (and of one of its branches)."""
        parts = [spark_session.CATALOG, *table.name()]
        if branch:
            parts.append(f"branch_{branch}")
        return ".".join(_q(p) for p in parts)

    @contextlib.contextmanager
    def commit_properties(self, properties: Mapping[str, str]) -> Iterator[None]:
        """Put ``properties`` on every Iceberg commit this thread makes meanwhile.

        Iceberg's ``CommitMetadata.withCommitProperties`` takes a Java ``Callable``; its
        thread-local map is set here directly (Py4J pins each Python thread to one JVM thread,
        and Spark commits a statement's write on the thread that ran it).
        """
        jvm: Any = self._spark.sparkContext._jvm
        holder = jvm.java.lang.Class.forName(_COMMIT_METADATA).getDeclaredField("COMMIT_PROPERTIES")
        holder.setAccessible(True)
        local = holder.get(None)
        values = jvm.java.util.HashMap()
        for key, value in properties.items():
            values.put(key, value)
        local.set(values)
        try:
            yield
        finally:
            local.remove()

    def upsert(
        self,
        table: Table,
        rows: pa.Table,
        *,
        keys: Sequence[str],
        snapshot_properties: Mapping[str, str],
        replace_all: bool = False,
        branch: str | None = None,
    ) -> WriteResult:
        """Commit ``rows`` to ``table`` as an upsert on ``keys`` in one ``MERGE INTO``.

        ``replace_all`` replaces the table's content instead (``INSERT OVERWRITE``, one commit).
        ``branch``: commit to that Iceberg branch instead of ``main``.

        Example:
            >>> engine.upsert(table, rows, keys=["symbol", "ts"],  # doctest: +SKIP
            ...               snapshot_properties={"dataflow.bookmark": "…"}, branch="audit")
            WriteResult(rows_written=10, rows_replaced=0, rows_skipped=0, snapshot_id=…)
        """
        from pyiceberg.table.refs import MAIN_BRANCH

        missing = [key for key in keys if key not in rows.column_names]
        if missing:
            raise ModelError(f"table {table.name()[-1]}: key column(s) {missing} not in the rows")
        ref = branch or MAIN_BRANCH
        target = self.identifier(table, None if ref == MAIN_BRANCH else ref)
        has_ref = table.snapshot_by_name(ref) is not None
        self.register("_df_incoming", rows)
        try:
            with (
                self._errors(f"-- target: {table.name()[-1]}\n"),
                self._catalog_session() as spark,
            ):
                spark.read.parquet(str(self._views["_df_incoming"])).createOrReplaceTempView(
                    "_df_incoming"
                )
                result = self._write(spark, table, target, rows, keys, replace_all, has_ref,
                                     dict(snapshot_properties))  # fmt: skip
        finally:
            self.unregister("_df_incoming")
        table.refresh()
        snapshot = table.snapshot_by_name(ref)
        result.snapshot_id = snapshot.snapshot_id if snapshot else None
        return result

    @contextlib.contextmanager
    def _catalog_session(self) -> Iterator[SparkSession]:
        """A session whose catalog is fresh, closed afterwards.

        Iceberg's JDBC catalog keeps its SQLite connections in a pool, and one can stay in a
        read transaction, pinned to an old snapshot of the catalog: a table pyiceberg created
        or committed since is then missed. A catalog per write, closed after it, always reads
        the catalog as it is (a new session costs milliseconds; the JVM is shared).
        """
        spark = spark_session.session(self._settings)
        try:
            yield spark
        finally:
            manager = spark._jsparkSession.sessionState().catalogManager()
            with contextlib.suppress(Exception):
                if manager.isCatalogRegistered(spark_session.CATALOG):
                    manager.catalog(spark_session.CATALOG).icebergCatalog().close()

    def _write(
        self,
        spark: SparkSession,
        table: Table,
        target: str,
        rows: pa.Table,
        keys: Sequence[str],
        replace_all: bool,
        has_ref: bool,
        props: dict[str, str],
    ) -> WriteResult:
        schema = spark.table(self.identifier(table)).schema
        incoming = set(rows.column_names)
        columns = [field.name for field in schema.fields]
        cast = ", ".join(
            (
                f"CAST({_q(f.name)} AS {f.dataType.simpleString()}) AS {_q(f.name)}"
                if f.name in incoming
                else f"CAST(NULL AS {f.dataType.simpleString()}) AS {_q(f.name)}"
            )
            for f in schema.fields
        )
        order = [c for c in LINEAGE_ORDER if c in incoming]
        key_list = ", ".join(_q(k) for k in keys)
        order_sql = ", ".join(f"{_q(c)} DESC NULLS LAST" for c in order) or "1"
        col_list = ", ".join(_q(c) for c in columns)
        source = (
            f"SELECT {col_list} FROM (SELECT {cast}, row_number() OVER (PARTITION BY {key_list} "
            f"ORDER BY {order_sql}) AS _df_rn FROM _df_incoming) WHERE _df_rn = 1"
        )
        spark.sql(source).createOrReplaceTempView("_df_source")
        try:
            result = WriteResult()
            if replace_all or not has_ref:
                if not has_ref and target != self.identifier(table):
                    # A branch of a table with no snapshot cannot be named yet; Iceberg creates
                    # it on the first write-audit-publish commit (main stays empty meanwhile).
                    self._insert_new_branch(spark, table, target, props)
                else:
                    verb = "INSERT OVERWRITE" if replace_all and has_ref else "INSERT INTO"
                    with self.commit_properties(props):
                        spark.sql(f"{verb} {target} SELECT * FROM _df_source")
                # The commit's own count (no second pass over the batch).
                result.rows_written = self._added_records(table, target)
                result.rows_skipped = rows.num_rows - result.rows_written
                return result
            match = " AND ".join(f"t.{_q(k)} <=> s.{_q(k)}" for k in keys)
            newer = self._newer(order)
            counts = spark.sql(
                f"SELECT count_if(t._df_hit IS NULL) AS added, "
                f"count_if(t._df_hit AND {newer}) "
                f"AS replaced FROM _df_source s LEFT JOIN (SELECT {key_list}, "
                f"{', '.join(_q(c) for c in order) or '1 AS _df_none'}, true AS _df_hit "
                f"FROM {target}) t ON {match}"
            ).collect()[0]
            added, replaced = int(counts["added"] or 0), int(counts["replaced"] or 0)
            result.rows_written = added + replaced
            result.rows_replaced = replaced
            result.rows_skipped = rows.num_rows - added - replaced
            if not result.rows_written:
                return result  # nothing newer: no commit, the bookmark stays where it was
            updates = ", ".join(f"t.{_q(c)} = s.{_q(c)}" for c in columns)
            values = ", ".join(f"s.{_q(c)}" for c in columns)
            with self.commit_properties(props):
                spark.sql(
                    f"MERGE INTO {target} t USING _df_source s ON {match} "
                    f"WHEN MATCHED AND {newer} THEN UPDATE SET {updates} "
                    f"WHEN NOT MATCHED THEN INSERT ({col_list}) VALUES ({values})"
                )
            return result
        finally:
            spark.catalog.dropTempView("_df_source")

    @staticmethod
    def _added_records(table: Table, target: str) -> int:
        from pyiceberg.table.refs import MAIN_BRANCH

        ref = target.rsplit(".", 1)[1].strip("`")[len("branch_") :] if ".`branch_" in target else ""
        table.refresh()
        snapshot = table.snapshot_by_name(ref or MAIN_BRANCH)
        summary = snapshot.summary if snapshot is not None else None
        return int(summary.get("added-records", "0") or 0) if summary is not None else 0

    def _insert_new_branch(
        self, spark: SparkSession, table: Table, target: str, props: dict[str, str]
    ) -> None:
        branch = target.rsplit(".", 1)[1].strip("`")[len("branch_") :]
        plain = self.identifier(table)
        if table.properties.get("write.wap.enabled") != "true":
            spark.sql(f"ALTER TABLE {plain} SET TBLPROPERTIES ('write.wap.enabled' = 'true')")
        spark.conf.set("spark.wap.branch", branch)
        try:
            with self.commit_properties(props):
                spark.sql(f"INSERT INTO {plain} SELECT * FROM _df_source")
        finally:
            spark.conf.unset("spark.wap.branch")

    @staticmethod
    def _newer(order: Sequence[str]) -> str:
        """SQL: the source row ``s`` is strictly newer than the table's row ``t``."""
        if not order:
            return "false"
        terms = []
        for position, column in enumerate(order):
            equal = [f"s.{_q(c)} <=> t.{_q(c)}" for c in order[:position]]
            greater = (
                f"(s.{_q(column)} > t.{_q(column)} OR "
                f"(s.{_q(column)} IS NOT NULL AND t.{_q(column)} IS NULL))"
            )
            terms.append("(" + " AND ".join([*equal, greater]) + ")")
        return "(" + " OR ".join(terms) + ")"


__all__ = ["LINEAGE_ORDER", "SparkEngine"]
