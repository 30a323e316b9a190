"""`dataflow.connect()`: SQL over the catalog from Python, as Arrow, pandas, polars and DuckDB."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest

from dataflow.client import Connection, Result, connect
from dataflow.config import Settings, load_settings
from dataflow.errors import ConfigError, QueryError, TableNotFoundError
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.query import QuerySession

TABLES = ["market.quotes", "market.time_series", "raw.quote", "raw.time_series"]


@pytest.fixture(scope="module")
def api_connect_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(tmp_path_factory.mktemp("connect") / "project", env={})
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote"]))
    assert result.status == "succeeded", result.results
    return settings


@pytest.fixture
def api_con(api_connect_settings: Settings) -> Iterator[Connection]:
    with connect(api_connect_settings.project_dir) as con:
        yield con


@pytest.fixture(scope="module")
def api_symbol_counts(api_connect_settings: Settings) -> list[tuple[str, int]]:
    """The oracle: rows per symbol straight from a QuerySession."""
    with QuerySession(api_connect_settings) as session:
        rows = session.execute(
            "SELECT symbol, count(*) FROM market.time_series GROUP BY 1 ORDER BY 1"
        ).rows
    assert rows
    return [(str(symbol), int(count)) for symbol, count in rows]


def test_sql_returns_arrow_and_rows(
    api_con: Connection, api_symbol_counts: list[tuple[str, int]]
) -> None:
    result = api_con.sql(
        "SELECT symbol, count(*) AS n FROM market.time_series GROUP BY 1 ORDER BY 1"
    )
    assert isinstance(result, Result)
    assert isinstance(result.arrow(), pa.Table)
    assert result.columns == ["symbol", "n"]
    assert len(result) == len(api_symbol_counts)
    assert result.rows() == api_symbol_counts


def test_athena_dialect_and_parameters(
    api_con: Connection, api_symbol_counts: list[tuple[str, int]]
) -> None:
    symbol, count = api_symbol_counts[0]
    result = api_con.sql(
        "SELECT count_if(symbol = ?) AS n FROM time_series", dialect="athena", params=[symbol]
    )
    assert result.rows() == [(count,)]
    named = api_con.sql("SELECT count(*) FROM time_series WHERE symbol = $s", params={"s": symbol})
    assert named.rows() == [(count,)]


def test_df_is_pandas(api_con: Connection, api_symbol_counts: list[tuple[str, int]]) -> None:
    pd = pytest.importorskip("pandas")
    frame = api_con.sql("SELECT symbol, count(*) AS n FROM time_series GROUP BY 1 ORDER BY 1").df()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.itertuples(index=False, name=None)) == api_symbol_counts


def test_pl_is_polars_or_a_clear_error(api_con: Connection) -> None:
    result = api_con.sql("SELECT 1 AS one")
    if importlib.util.find_spec("polars") is None:
        with pytest.raises(ImportError, match=r"pip install polars"):
            result.pl()
    else:
        assert result.pl().to_dicts() == [{"one": 1}]


def test_errors_are_athena_style(api_con: Connection) -> None:
    with pytest.raises(TableNotFoundError, match=r"^TABLE_NOT_FOUND: line 1:15:"):
        api_con.sql("SELECT * FROM market.nope")
    with pytest.raises(QueryError, match="NOT_SUPPORTED"):
        api_con.sql("DELETE FROM market.time_series")


def test_tables(api_con: Connection) -> None:
    assert api_con.tables() == TABLES


def test_duckdb_has_every_table_as_a_view(
    api_con: Connection, api_symbol_counts: list[tuple[str, int]]
) -> None:
    # A pruned query through .sql() first: it must not narrow what .duckdb sees.
    first = api_symbol_counts[0][0]
    api_con.sql("SELECT count(*) FROM time_series WHERE symbol = ?", params=[first])
    con = api_con.duckdb
    assert isinstance(con, duckdb.DuckDBPyConnection)
    rows = con.sql("SELECT symbol, count(*) FROM market.time_series GROUP BY 1 ORDER BY 1")
    assert rows.fetchall() == api_symbol_counts
    for name in TABLES:
        con.sql(f"SELECT * FROM {name} LIMIT 1").fetchall()
    [(raw,)] = con.sql("SELECT count(*) FROM raw.quote").fetchall()
    assert raw > 0


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO market.time_series SELECT * FROM market.time_series LIMIT 1",
        "COPY (SELECT 1) TO '/tmp/dataflow-connect-escape.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
    ],
)
def test_duckdb_is_read_only(api_con: Connection, statement: str) -> None:
    with pytest.raises(duckdb.Error):
        api_con.duckdb.execute(statement)


def test_close_and_context_manager(api_connect_settings: Settings) -> None:
    con = connect(api_connect_settings.project_dir)
    views = con.duckdb
    views.sql("SELECT 1").fetchall()
    con.close()
    con.close()
    with pytest.raises(duckdb.Error):
        views.sql("SELECT 1").fetchall()
    with pytest.raises(ConfigError, match="closed"):
        con.sql("SELECT 1")
    with connect(api_connect_settings.project_dir) as again:
        assert again.sql("SELECT 2 AS two").rows() == [(2,)]
