"""The transform on engine: spark gives the tables the DuckDB engine gives, in the same catalog.

One JVM serves the whole module (the session module keeps it per process). DuckDB is the oracle:
the same raw zone is transformed by both engines into two projects and the tables are compared on
their keys (floats within FLOAT_TOLERANCE). Tables written by one engine are then upserted by the
other, so each reads what the other committed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings, load_settings
from dataflow.errors import ConfigError
from dataflow.pipeline import RunOptions, RunResult, run_pipeline
from dataflow.storage import import_responses, open_store
from dataflow.transform import TransformStage
from dataflow.transform.bookmarks import BOOKMARK_PROPERTY, read_bookmark
from dataflow.transform.models import builtin_models

from .samples import SAMPLES, SPARK_TABLES, diff_rows, land_samples

# Py4J drops its per-thread JVM connections to the garbage collector (unclosed sockets).
pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

KEYS = {m.target: list(m.key) for m in builtin_models().values()}


def _settings(root: Path, engine: str) -> Settings:
    return load_settings(root, overrides={"engine": engine}, env={})


def _transform(settings: Settings, *, branch: str | None = None) -> RunResult:
    stage = TransformStage(tables=SPARK_TABLES, branch=branch)
    return run_pipeline(settings, RunOptions(), stages=[stage])


def _rows(settings: Settings, table: str, ref: str = "main") -> list[dict]:
    loaded = open_catalog(settings).load_table(("market", table))
    snapshot = loaded.snapshot_by_name(ref)
    if snapshot is None:
        return []
    return loaded.scan(snapshot_id=snapshot.snapshot_id).to_arrow().to_pylist()


def _copy_raw(source: Settings, target: Settings) -> None:
    shutil.copytree(
        Path(source.warehouse_uri) / "raw", Path(target.warehouse_uri) / "raw", dirs_exist_ok=True
    )


def _assert_same_tables(left: Settings, right: Settings) -> None:
    for table in SPARK_TABLES:
        a, b = _rows(left, table), _rows(right, table)
        assert a, f"{table}: no rows"
        assert diff_rows(a, b, KEYS[table]) == [], table


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Settings]:
    """duckdb, spark and mixed projects over the same raw zone (the real samples)."""
    root = tmp_path_factory.mktemp("spark-parity")
    made = {name: _settings(root / name, "duckdb") for name in ("duckdb", "spark", "mixed")}
    land_samples(open_store(made["duckdb"]))
    _copy_raw(made["duckdb"], made["spark"])
    return made


def _spark(settings: Settings) -> RunResult:
    result = _transform(settings.model_copy(update={"engine": "spark"}))
    assert result.status == "succeeded", result.results["transform"].message
    return result


def _land_again(projects: dict[str, Settings], *names: str, endpoint: str) -> None:
    """Newer copies of samples in every project's raw zone (the same files everywhere)."""
    duck = projects["duckdb"]
    import_responses(open_store(duck), [SAMPLES / name for name in names], endpoint=endpoint)
    for name in ("spark", "mixed"):
        _copy_raw(duck, projects[name])


def test_spark_builds_the_same_tables_as_duckdb(projects: dict[str, Settings]) -> None:
    duck, spark, mixed = projects["duckdb"], projects["spark"], projects["mixed"]
    _copy_raw(duck, mixed)
    assert _transform(duck).status == "succeeded"
    assert _transform(mixed).status == "succeeded"
    stats = _spark(spark).results["transform"].details["tables"]
    assert stats["time_series"]["rows_out"] == 431
    assert stats["time_series"]["error_envelopes"] == 1
    _assert_same_tables(duck, spark)

    # The bookmark rides on Spark's own commit, and names every raw file consumed.
    table = open_catalog(spark).load_table(("market", "time_series"))
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None
    assert summary.get(BOOKMARK_PROPERTY)
    reference = open_catalog(duck).load_table(("market", "time_series"))
    assert read_bookmark(table) == read_bookmark(reference) != set()


def test_each_engine_upserts_what_the_other_wrote(projects: dict[str, Settings]) -> None:
    duck, spark, mixed = projects["duckdb"], projects["spark"], projects["mixed"]
    # A newer copy of one file: its 30 bars replace the older ones (latest received_at wins),
    # and a quote answer under the wrong endpoint is quarantined the same way by both engines.
    _land_again(
        projects,
        "time_series__intraday_1min_aapl.json",
        "quote__aapl_2022.json",
        endpoint="time_series",
    )
    assert _transform(duck).status == "succeeded"
    series = _spark(spark).results["transform"].details["tables"]["time_series"]
    assert (series["rows_out"], series["replaced"], series["quarantined"]) == (30, 30, 1)
    _spark(mixed)  # Spark merges into the tables DuckDB wrote
    _assert_same_tables(duck, spark)
    _assert_same_tables(duck, mixed)
    quarantined = [_rows(s, "quarantine") for s in (duck, spark)]
    for rows in quarantined:
        for row in rows:
            row.pop("quarantine_run_id")  # each run its own id
    assert diff_rows(*quarantined, KEYS_Q) == []

    # DuckDB upserts into the tables Spark wrote.
    _land_again(projects, "time_series__daily_tsla_keys_sorted.json", endpoint="time_series")
    assert _transform(duck).status == "succeeded"
    assert _transform(spark).status == "succeeded"
    _assert_same_tables(duck, spark)

    # `dataflow query` reads the table Spark then DuckDB committed to.
    out = subprocess.run(
        [sys.executable, "-m", "dataflow", "query", "SELECT count(*) AS n FROM time_series",
         "--project", str(spark.project_dir), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "431" in out.stdout


KEYS_Q = ["table_name", "_raw_key", "_raw_line", "_record_path"]


def test_audit_branch_commit_leaves_main_empty(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "p", "spark")
    import_responses(open_store(settings), [SAMPLES / "quote__aapl_2022.json"], endpoint="quote")
    result = run_pipeline(
        settings, RunOptions(), stages=[TransformStage(tables=["quotes"], branch="audit")]
    )
    assert result.status == "succeeded", result.results["transform"].message
    table = open_catalog(settings).load_table(("market", "quotes"))
    assert table.snapshot_by_name("main") is None
    audit = table.snapshot_by_name("audit")
    assert audit is not None
    assert audit.summary is not None
    assert audit.summary.get(BOOKMARK_PROPERTY)
    assert [r["symbol"] for r in _rows(settings, "quotes", "audit")] == ["AAPL"]


MERGED_MODEL = """-- target: merged_quotes
-- sources: quote
-- key: symbol
SELECT CAST(symbol AS VARCHAR) AS symbol,
    CAST(json_merge_patch(CAST(record AS JSON), '{"x": 1}') AS VARCHAR) AS patched,
    NULL AS _error, _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM raw
"""


def test_a_model_spark_cannot_run_is_named_and_commits_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "p", "spark")
    (settings.project_dir / "models").mkdir(parents=True)
    (settings.project_dir / "models" / "merged_quotes.sql").write_text(MERGED_MODEL)
    import_responses(open_store(settings), [SAMPLES / "quote__aapl_2022.json"], endpoint="quote")
    # The checks every run makes first find it: nothing is fetched or started.
    with pytest.raises(ConfigError) as failed:
        run_pipeline(settings, RunOptions(), stages=[TransformStage(tables=["merged_quotes"])])
    message = str(failed.value)
    assert "model merged_quotes" in message
    assert "json_merge_patch" in message
    catalog = open_catalog(settings)
    assert not catalog.table_exists(("market", "merged_quotes"))


def test_postgres_catalog_and_a_full_refresh(tmp_path: Path, pg_database: str) -> None:
    settings = load_settings(
        tmp_path / "p", overrides={"engine": "spark", "metadata.url": pg_database}, env={}
    )
    store = open_store(settings)
    import_responses(store, [SAMPLES / "time_series__daily_tsla_keys_sorted.json"],
                     endpoint="time_series")  # fmt: skip
    first = run_pipeline(settings, RunOptions(), stages=[TransformStage(tables=["time_series"])])
    assert first.status == "succeeded"
    assert not (Path(settings.warehouse_uri) / "dataflow.db").exists(), "nothing in SQLite"
    table = open_catalog(settings).load_table(("market", "time_series"))
    assert table.scan().to_arrow().num_rows == 10

    # --full-refresh: one INSERT OVERWRITE replaces the content, with the bookmark on it.
    again = run_pipeline(
        settings,
        RunOptions(full_refresh=True),
        stages=[TransformStage(tables=["time_series"], full_refresh=True)],
    )
    assert again.results["transform"].details["tables"]["time_series"]["rows_out"] == 10
    table = open_catalog(settings).load_table(("market", "time_series"))
    assert table.scan().to_arrow().num_rows == 10
    current = table.current_snapshot()
    assert current is not None
    assert current.summary is not None
    assert current.summary.operation.value == "overwrite"
    assert current.summary.get(BOOKMARK_PROPERTY)
    assert len(read_bookmark(table)) == 1


# DuckDB's timezone(zone, ts) converts a local TIMESTAMP to an instant and an instant
# (TIMESTAMPTZ) to a local time; TRY_CAST(… AS TIMESTAMP) reads the wall time and ignores a
# stated offset, TRY_CAST(… AS TIMESTAMPTZ) honours it. time_series.sql relies on all four.
TIME_SQL = """
WITH w AS (
    SELECT s, TRY_CAST(s AS TIMESTAMP) AS local_ts, TRY_CAST(s AS TIMESTAMPTZ) AS zoned_ts,
        'America/New_York' AS _tz
    FROM (VALUES ('2024-11-03 01:30:00'), ('2024-03-10 02:30:00'), ('2024-03-10 03:30:00'),
        ('2024-11-03 00:30:00'), ('2024-03-10T10:00:00+05:00'), ('2024-03-10 10:00:00 UTC'),
        ('2024-03-10 10:00:00-0400'), ('garbage')) t(s)
),
x AS (
    SELECT *,
        timezone(_tz, local_ts - INTERVAL 3 HOUR) + INTERVAL 3 HOUR AS e_ts,
        timezone(_tz, local_ts + INTERVAL 3 HOUR) - INTERVAL 3 HOUR AS l_ts
    FROM w
)
SELECT s,
    CAST(local_ts AS VARCHAR) AS local_text,
    epoch(zoned_ts) AS zoned,
    epoch(e_ts) AS e_epoch,
    epoch(l_ts) AS l_epoch,
    COALESCE(timezone(_tz, e_ts) = local_ts, false) AS e_ok,
    COALESCE(timezone(_tz, l_ts) = local_ts, false) AS l_ok
FROM x
ORDER BY s
"""


def test_time_zone_constructs_give_the_values_duckdb_gives(tmp_path: Path) -> None:
    from dataflow.engines.duckdb.engine import DuckDBEngine
    from dataflow.engines.spark.engine import SparkEngine

    duck = DuckDBEngine()
    expected = duck.sql(TIME_SQL).to_pylist()
    with SparkEngine(settings=_settings(tmp_path / "p", "spark")) as spark:
        got = spark.sql(TIME_SQL).to_pylist()
    assert [r["l_ok"] for r in expected if r["s"].startswith("2024-11-03 01")] == [True]
    assert got == expected
