"""Model discovery, headers, overrides and dependency order."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflow.catalog.iceberg import parse_partition
from dataflow.errors import ConfigError, ModelError
from dataflow.transform.models import discover_models, order_models, parse_model, select_models

BUILTIN_TABLES = {
    "time_series", "quotes", "prices", "eod", "fx_rates", "indicators", "stocks", "etfs",
    "forex_pairs", "cryptocurrencies", "exchanges", "earnings", "dividends", "splits",
}  # fmt: skip


def test_builtin_models_cover_the_issue_tables_with_valid_partitions() -> None:
    models = discover_models()
    assert {m.target for m in models.values()} == BUILTIN_TABLES
    bars = models["time_series"]
    assert bars.key == ("symbol", "interval", "ts")
    assert parse_partition(bars.partition) == [
        ("identity", "interval", None),
        ("year", "ts", None),
    ]
    for model in models.values():
        parse_partition(model.partition)  # every spec parses


def test_project_models_override_and_extend(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "prices.sql").write_text("-- sources: price\n-- key: symbol\nSELECT 1 AS x\n")
    (folder / "big_movers.sql").write_text(
        "-- target: movers\n-- sources: quote\n-- key: symbol\n-- depends_on: quotes\nSELECT 1\n"
    )
    models = discover_models(tmp_path)
    assert models["prices"].origin == str(folder / "prices.sql")
    assert models["prices"].partition is None
    ordered = [m.name for m in select_models(models, ["movers", "quotes"])]
    assert ordered == ["quotes", "big_movers"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- key: k\nSELECT 1", "needs '-- sources"),
        ("-- sources: a\n-- kee: k\nSELECT 1", "unknown header key 'kee'"),
    ],
)
def test_bad_headers_name_the_file(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as info:
        parse_model("m", text, origin="models/m.sql")
    assert info.value.exit_code == 2


def test_cycles_and_unknown_tables_are_model_errors() -> None:
    a = parse_model("a", "-- sources: x\n-- key: k\n-- depends_on: b\nSELECT 1", origin="a")
    b = parse_model("b", "-- sources: x\n-- key: k\n-- depends_on: a\nSELECT 1", origin="b")
    with pytest.raises(ModelError, match="cycle"):
        order_models([a, b])
    with pytest.raises(ModelError, match="did you mean time_series"):
        select_models(discover_models(), ["time_serie"])


def test_partition_specs_parse_transforms_with_arguments() -> None:
    assert parse_partition("bucket(16, symbol), day(ts)") == [
        ("bucket", "symbol", 16), ("day", "ts", None),
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="needs a width"):
        parse_partition("truncate(code)")
    with pytest.raises(ConfigError, match="use one of"):
        parse_partition("week(ts)")
