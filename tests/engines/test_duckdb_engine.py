"""The engine registry and the DuckDB engine's SQL contract."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataflow.engines import Engine, get_engine, translate
from dataflow.errors import ConfigError, ModelError


def test_registry_finds_duckdb_and_explains_the_rest() -> None:
    engine = get_engine("duckdb")
    try:
        assert isinstance(engine, Engine)
        assert engine.capabilities.dialect == "duckdb"
    finally:
        engine.close()
    with pytest.raises(ConfigError, match="did you mean 'duckdb'"):
        get_engine("duckbd")
    with pytest.raises(ConfigError, match=r"needs the project's settings|dataflow-etl\[spark\]"):
        get_engine("spark")


def test_models_run_over_registered_arrow_in_utc() -> None:
    engine = get_engine("duckdb")
    try:
        raw = pa.table({"record": ['{"datetime": "2023-08-24 11:09:00", "close": "N/A"}']})
        out = engine.run_model(
            "SELECT timezone('America/New_York', CAST(record->>'datetime' AS TIMESTAMP)) AS ts, "
            "TRY_CAST(record->>'close' AS DOUBLE) AS close FROM raw",
            relations={"raw": raw},
        )
        (row,) = out.to_pylist()
        assert (row["ts"].hour, row["ts"].utcoffset().total_seconds(), row["close"]) == (
            15,
            0,
            None,
        )
        with pytest.raises(ModelError, match="SQL failed"):
            engine.sql("SELECT * FROM raw")  # unregistered after the model ran
    finally:
        engine.close()


def test_sql_text_is_the_contract_translated_for_spark() -> None:
    spark = translate("SELECT record->>'open' AS o FROM raw", "spark")
    assert spark == "SELECT GET_JSON_OBJECT(record, '$.open') AS o FROM raw"
    with pytest.raises(ConfigError, match="cannot be parsed"):
        translate("SELECT FROM WHERE (", "spark")
