"""Query executions: lifecycle and history, result files, pruning and the cutoff, dry runs,
time travel, one snapshot per query, CTAS/UNLOAD, named queries with bound parameters."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataflow.catalog.iceberg import create_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.errors import ConfigError
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.query.config import QueryConfig, Workgroup
from dataflow.query.errors import QueryCancelledError, QueryError
from dataflow.query.execution import BYTES_LIMIT_REASON, QueryRunner
from dataflow.query.history import QueryState, get_execution, list_executions
from dataflow.query.named import load_named, parse_params, save_named
from dataflow.query.output import read_results, typed_rows
from dataflow.query.planning import MINIMUM_BYTES, athena_cost

ONE_MONTH = """SELECT count(*) AS n FROM market.time_series
               WHERE interval = '1day' AND symbol = 'AAPL'
                 AND ts >= TIMESTAMP '{start}' AND ts < TIMESTAMP '{end}'"""


@pytest.fixture(scope="module")
def qs_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A real run, plus market.qs_tt: an Iceberg table with two snapshots (time travel)."""
    settings = load_settings(tmp_path_factory.mktemp("executions") / "project", env={})
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote"]))
    assert result.status == "succeeded", result.results
    schema = pa.schema([("k", pa.int64())])
    table = create_table(open_catalog(settings), "market", "qs_tt", schema)
    table.append(pa.table({"k": [1, 2]}, schema=schema))
    time.sleep(0.01)  # snapshot timestamps are milliseconds
    table.refresh().append(pa.table({"k": [3]}, schema=schema))
    return settings


@pytest.fixture
def qs_runner(qs_settings: Settings) -> Iterator[QueryRunner]:
    with QueryRunner(qs_settings) as runner:
        yield runner


def _month_bounds(runner: QueryRunner) -> tuple[str, str]:
    (latest,) = runner.session.execute("SELECT max(ts) FROM time_series").rows[0]
    start = latest.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=40)
    start = start.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")


def test_a_query_succeeds_with_statistics_history_and_result_files(
    qs_runner: QueryRunner, qs_settings: Settings
) -> None:
    outcome = qs_runner.run(
        "SELECT symbol, count(*) AS n, max(ts) AS last FROM time_series "
        "GROUP BY symbol ORDER BY symbol",
        dialect="athena",
    )
    execution = outcome.execution

    assert execution.state is QueryState.SUCCEEDED
    assert execution.rows_returned == outcome.result.row_count > 0
    assert execution.bytes_scanned == outcome.plan.bytes_scanned > 0
    assert execution.engine_ms is not None
    assert execution.planning_ms is not None
    assert execution.total_ms is not None
    assert execution.total_ms >= execution.engine_ms >= 0
    assert set(execution.snapshots) == {"market.time_series"}

    stored = get_execution(qs_runner.db, execution.query_id)
    assert stored.state is QueryState.SUCCEEDED
    assert stored.bytes_scanned == execution.bytes_scanned
    assert stored.output_location == execution.output_location
    assert stored.query_id in {e.query_id for e in list_executions(qs_runner.db)}
    assert get_execution(qs_runner.db, execution.query_id[:8]).query_id == execution.query_id

    key = f"results/{execution.query_id}.csv"
    text = qs_runner.store.get_bytes(key).decode()
    header, first, *_ = text.splitlines()
    assert header == '"symbol","n","last"'
    assert first.startswith('"AAPL","')
    assert first.endswith(' UTC"')
    infos, rows = read_results(qs_runner.store, key)
    assert [(i["Name"], i["Type"]) for i in infos] == [
        ("symbol", "varchar"),
        ("n", "bigint"),
        ("last", "timestamp with time zone"),
    ]
    assert typed_rows(infos, rows)[0]["n"] == outcome.result.rows[0][1]


def test_a_failed_query_is_recorded_with_its_error(qs_runner: QueryRunner) -> None:
    with pytest.raises(QueryError, match=r"^COLUMN_NOT_FOUND"):
        qs_runner.run("SELECT nope FROM time_series", dialect="athena")

    (latest, *_) = list_executions(qs_runner.db, limit=1)
    assert latest.state is QueryState.FAILED
    assert latest.error_type == "COLUMN_NOT_FOUND"
    assert latest.error_category == 2
    assert latest.completed_at is not None
    assert latest.output_location is None


def test_utility_results_are_text_files_like_athena(qs_runner: QueryRunner) -> None:
    """SHOW/DESCRIBE answer ``<id>.txt`` (no header, tab-separated); SELECTs ``<id>.csv``."""
    execution = qs_runner.run("DESCRIBE market.time_series").execution
    assert execution.statement_type == "UTILITY"
    key = f"results/{execution.query_id}.txt"
    assert execution.output_location.endswith(key)
    assert not qs_runner.store.exists(f"results/{execution.query_id}.csv")
    lines = qs_runner.store.get_bytes(key).decode().splitlines()
    assert lines[0].split("\t")[:2] == ["symbol", "VARCHAR"]
    _infos, rows = read_results(qs_runner.store, key)
    assert [row[0] for row in rows][:2] == ["symbol", "interval"]
    select = qs_runner.run("SELECT 1 AS one").execution
    assert select.output_location.endswith(f"results/{select.query_id}.csv")


def test_partition_and_timestamp_filters_prune_files(qs_runner: QueryRunner) -> None:
    start, end = _month_bounds(qs_runner)
    whole = qs_runner.dry_run("SELECT count(*) FROM time_series")
    month = qs_runner.dry_run(ONE_MONTH.format(start=start, end=end), dialect="athena")

    (scan,) = month.scans
    assert 0 < month.bytes_scanned < whole.bytes_scanned / 4
    assert scan.total_bytes == whole.bytes_scanned
    assert len(scan.files) == 1 < whole.files_scanned
    assert all(p.startswith("interval=1day/") for p in scan.partitions)

    # Pruning changes what is read, never the answer.
    pruned = qs_runner.run(ONE_MONTH.format(start=start, end=end), dialect="athena")
    full = qs_runner.session.execute(
        "SELECT count(*) FROM (SELECT * FROM time_series) WHERE interval = '1day' "
        f"AND symbol = 'AAPL' AND ts >= '{start}' AND ts < '{end}'"
    )
    assert pruned.result.rows == full.rows
    assert pruned.result.rows[0][0] > 0
    assert pruned.execution.bytes_scanned == month.bytes_scanned


@pytest.mark.parametrize(
    "where",
    [
        "interval IN ('1day') AND ts BETWEEN TIMESTAMP '{start}' AND TIMESTAMP '{end}'",
        "'1day' = interval AND TIMESTAMP '{start}' <= ts AND ts < TIMESTAMP '{end}'",
        "t.interval = $iv AND t.ts >= $start AND t.ts < $end",
    ],
)
def test_pruning_understands_in_between_flipped_and_bound_parameters(
    qs_runner: QueryRunner, where: str
) -> None:
    start, end = _month_bounds(qs_runner)
    params = {"iv": "1day", "start": start, "end": end} if "$" in where else None
    sql = f"SELECT count(*) FROM time_series t WHERE {where.format(start=start, end=end)}"
    plan = qs_runner.dry_run(sql, params=params)
    assert plan.files_scanned in (1, 2)


def test_filters_that_cannot_prune_read_everything(qs_runner: QueryRunner) -> None:
    whole = qs_runner.dry_run("SELECT 1 FROM time_series").bytes_scanned
    for sql in [
        "SELECT 1 FROM time_series WHERE interval = '1day' OR symbol = 'X'",
        "SELECT 1 FROM time_series a JOIN time_series b USING (symbol) WHERE a.interval = '1h'",
        "SELECT 1 FROM time_series WHERE date_trunc('month', ts) = TIMESTAMP '2020-01-01'",
    ]:
        assert qs_runner.dry_run(sql).bytes_scanned == whole, sql


def test_the_workgroup_cutoff_cancels_before_running(qs_settings: Settings) -> None:
    config = QueryConfig(workgroups={"tight": Workgroup("tight", 10_000)})
    with QueryRunner(qs_settings, config=config) as runner:
        with pytest.raises(QueryCancelledError, match=BYTES_LIMIT_REASON) as caught:
            runner.run("SELECT count(*) FROM time_series", workgroup="tight")
        stored = get_execution(runner.db, caught.value.query_id)
        assert stored.state is QueryState.CANCELLED
        assert stored.state_change_reason == BYTES_LIMIT_REASON
        assert stored.output_location is None
        assert not runner.store.exists(f"results/{stored.query_id}.csv")
        # A small query passes the same workgroup.
        assert runner.run("SELECT 1", workgroup="tight").execution.state is QueryState.SUCCEEDED
        with pytest.raises(ConfigError, match="workgroup 'nope' is not configured"):
            runner.run("SELECT 1", workgroup="nope")


def test_dry_run_reports_files_partitions_bytes_and_cost(qs_runner: QueryRunner) -> None:
    before = len(list_executions(qs_runner.db, limit=1000))
    plan = qs_runner.dry_run("SELECT * FROM time_series WHERE interval = '1h'")
    described = plan.describe()

    (table,) = described["tables"]
    assert table["table"] == "market.time_series"
    assert table["files"] < table["total_files"]
    assert table["partitions"]
    assert all(p.startswith("interval=1h/") for p in table["partitions"])
    assert described["bytes_scanned"] == sum(f.size for f in plan.scans[0].files)
    assert described["cost_usd"] == pytest.approx(athena_cost(plan.bytes_scanned))
    assert athena_cost(1) == athena_cost(MINIMUM_BYTES)
    assert len(list_executions(qs_runner.db, limit=1000)) == before  # nothing ran


def test_time_travel_by_snapshot_id_and_by_time(
    qs_runner: QueryRunner, qs_settings: Settings
) -> None:
    table = open_catalog(qs_settings).load_table(("market", "qs_tt"))
    first, second = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    at_first = dt.datetime.fromtimestamp(first.timestamp_ms / 1000, dt.UTC).isoformat()
    count = "SELECT count(*) FROM qs_tt"

    assert qs_runner.session.execute(count).rows == [(3,)]
    assert qs_runner.session.execute(count, as_of=first.snapshot_id).rows == [(2,)]
    assert qs_runner.session.execute(count, as_of=str(second.snapshot_id)).rows == [(3,)]
    outcome = qs_runner.run(count, as_of=at_first)
    assert outcome.result.rows == [(2,)]
    assert outcome.execution.snapshots == {"market.qs_tt": str(first.snapshot_id)}
    with pytest.raises(ConfigError, match="no snapshot at or before"):
        qs_runner.session.execute(count, as_of="2000-01-01T00:00:00Z")
    with pytest.raises(ConfigError, match="no snapshot with that id"):
        qs_runner.session.execute(count, as_of=12345)


def test_a_query_reads_the_snapshot_it_planned(qs_settings: Settings) -> None:
    schema = pa.schema([("k", pa.int64())])
    table = create_table(open_catalog(qs_settings), "market", "qs_moving", schema)
    table.append(pa.table({"k": [1]}, schema=schema))
    with QueryRunner(qs_settings) as runner:
        plan = runner.session.plan("SELECT count(*) FROM qs_moving a, qs_moving b")
        table.refresh().append(pa.table({"k": [2, 3]}, schema=schema))  # a commit meanwhile
        assert runner.session.run(plan).rows == [(1,)]
        assert runner.session.execute("SELECT count(*) FROM qs_moving").rows == [(3,)]


def test_ctas_creates_a_partitioned_iceberg_table(
    qs_runner: QueryRunner, qs_settings: Settings
) -> None:
    outcome = qs_runner.run(
        "CREATE TABLE market.qs_daily WITH (format = 'PARQUET', partitioned_by = ARRAY['symbol']) "
        "AS SELECT ts, close, symbol FROM time_series WHERE interval = '1day'",
        dialect="athena",
    )
    execution = outcome.execution

    assert (execution.statement_type, execution.substatement_type) == (
        "DDL",
        "CREATE_TABLE_AS_SELECT",
    )
    table = open_catalog(qs_settings).load_table(("market", "qs_daily"))
    assert [f.name for f in table.spec().fields] == ["symbol"]
    expected = qs_runner.session.execute(
        "SELECT count(*) FROM time_series WHERE interval = '1day'"
    ).rows[0][0]
    assert outcome.result.rows == [(expected,)]
    assert qs_runner.session.execute("SELECT count(*) FROM market.qs_daily").rows == [(expected,)]
    manifest = qs_runner.store.get_bytes(f"results/{execution.query_id}-manifest.csv").decode()
    assert manifest.count("\n") == len(list(table.scan().plan_files())) > 1
    plan = qs_runner.dry_run("SELECT * FROM market.qs_daily WHERE symbol = 'AAPL'")
    assert plan.files_scanned == 1
    with pytest.raises(QueryError, match=r"^TABLE_ALREADY_EXISTS"):
        qs_runner.run("CREATE TABLE market.qs_daily AS SELECT 1 AS x")


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("PARQUET", ".gzip.parquet"), ("JSON", ".gz"), ("TEXTFILE", ".gz")]
)
def test_unload_writes_files_inside_the_warehouse(
    qs_runner: QueryRunner, fmt: str, suffix: str
) -> None:
    target = f"exports/qs_{fmt.lower()}/"
    outcome = qs_runner.run(
        f"UNLOAD (SELECT symbol, close FROM quotes ORDER BY symbol) TO '{target}' "
        f"WITH (format = '{fmt}')"
    )
    keys = [o.key for o in qs_runner.store.list(target)]

    assert len(keys) == 1
    assert keys[0].endswith(suffix)
    data = qs_runner.store.get_bytes(keys[0])
    expected = qs_runner.session.execute("SELECT symbol, close FROM quotes ORDER BY symbol").rows
    if fmt == "PARQUET":
        rows = [tuple(r.values()) for r in pq.read_table(io.BytesIO(data)).to_pylist()]
    elif fmt == "JSON":
        lines = gzip.decompress(data).decode().splitlines()
        rows = [tuple(json.loads(line).values()) for line in lines]
    else:
        lines = gzip.decompress(data).decode().splitlines()
        rows = [(s, float(c)) for s, c in (line.split("\x01") for line in lines)]
    assert rows == expected
    assert outcome.result.rows == [(len(expected),)]
    assert outcome.execution.substatement_type == "UNLOAD"
    with pytest.raises(QueryError, match="not empty"):
        qs_runner.run(f"UNLOAD (SELECT 1 AS x) TO '{target}' WITH (format = '{fmt}')")


def test_unload_partitioned_csv(qs_runner: QueryRunner) -> None:
    qs_runner.run(
        "UNLOAD (SELECT symbol, close FROM quotes WHERE symbol IN ('AAPL', 'MSFT')) "
        "TO 'exports/qs_parts' WITH (format = 'TEXTFILE', field_delimiter = ',', "
        "compression = 'none', partitioned_by = ARRAY['symbol'])"
    )
    keys = sorted(o.key for o in qs_runner.store.list("exports/qs_parts/"))
    assert [k.split("/")[2] for k in keys] == ["symbol=AAPL", "symbol=MSFT"]
    (row,) = csv.reader(io.StringIO(qs_runner.store.get_bytes(keys[0]).decode()))
    assert len(row) == 1  # the partition column lives in the folder name


@pytest.mark.parametrize(
    "sql",
    [
        "UNLOAD (SELECT 1 AS x) TO '/etc/qs' WITH (format = 'JSON')",
        "UNLOAD (SELECT 1 AS x) TO 'iceberg/market/x' WITH (format = 'JSON')",
        "UNLOAD (SELECT 1 AS x) TO '../outside' WITH (format = 'JSON')",
        "UNLOAD (SELECT 1 AS x) TO 'exports/qs_orc' WITH (format = 'ORC')",
        "CREATE TABLE market.qs_hive WITH (table_type = 'HIVE') AS SELECT 1 AS x",
        "COPY (SELECT 1) TO 'exports/qs_copy.csv'",
        "INSERT INTO market.qs_tt VALUES (9)",
        "ATTACH 'exports/qs.db'",
        "INSTALL httpfs",
    ],
)
def test_other_writes_are_refused(qs_runner: QueryRunner, sql: str) -> None:
    with pytest.raises(QueryError, match=r"^(PERMISSION_DENIED|NOT_SUPPORTED)") as caught:
        qs_runner.run(sql)
    assert "\n" not in str(caught.value)
    assert not qs_runner.store.list("exports/qs_orc/")
    assert not qs_runner.store.exists("exports/qs_copy.csv")


def test_named_queries_with_typed_bound_parameters(
    qs_runner: QueryRunner, qs_settings: Settings
) -> None:
    sql = "SELECT count(*) AS n FROM time_series WHERE symbol = $symbol AND volume >= $min_volume"
    save_named(qs_settings, "qs_volume", sql)
    with pytest.raises(ConfigError, match="exists"):
        save_named(qs_settings, "qs_volume", sql)
    params = parse_params(["symbol=AAPL", "min_volume=0"])
    assert params == {"symbol": "AAPL", "min_volume": 0}

    named = load_named(qs_settings, "qs_volume")
    outcome = qs_runner.run(named.sql, params=params)
    expected = qs_runner.session.execute(
        "SELECT count(*) FROM time_series WHERE symbol = 'AAPL' AND volume >= 0"
    ).rows
    assert outcome.result.rows == expected

    # A value is data, never SQL: an injection attempt matches nothing.
    hostile = {"symbol": "AAPL' OR '1'='1", "min_volume": 0}
    assert qs_runner.run(named.sql, params=hostile).result.rows == [(0,)]
    assert qs_runner.run(
        "SELECT ? || '!' AS s, ? + 1 AS n", params={"a": "x", "b": 41}
    ).result.rows == [("x!", 42)]
    with pytest.raises(ConfigError, match=r"no value for \$min_volume"):
        qs_runner.run(named.sql, params={"symbol": "AAPL"})


def test_each_query_records_athena_style_metrics(qs_settings: Settings) -> None:
    from dataflow.monitor.metrics import Metrics

    with QueryRunner(qs_settings) as runner:
        runner.run("SELECT count(*) FROM market.time_series")
        db = runner.db
        dims = {"pipeline": qs_settings.name, "workgroup": "primary", "state": "SUCCEEDED"}
        scanned = Metrics(db).query("Dataflow/Query", "ProcessedBytes", dimensions=dims)
        total = Metrics(db).query("Dataflow/Query", "TotalExecutionTime", dimensions=dims)
    assert scanned
    assert scanned[-1].value > 0
    assert scanned[-1].unit == "Bytes"
    assert total[-1].unit == "Milliseconds"
