"""Schema inference per format, and Glue's type widening on merges."""

from __future__ import annotations

import bz2
import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataflow.catalog.infer import (
    Column,
    finalize_type,
    infer_file,
    merge_schemas,
    merge_types,
)
from dataflow.errors import ConfigError


def cols(data: bytes, fmt: str = "auto") -> list[tuple[str, str]]:
    return [(c.name, c.type) for c in infer_file(data, name="f", fmt=fmt).columns]


# --- JSON ----------------------------------------------------------------------------------------


def test_json_single_document() -> None:
    doc = {"symbol": "AAPL", "close": 189.5, "volume": 10, "open": True, "tags": ["a"]}
    schema = infer_file(json.dumps(doc).encode(), name="one.json")
    assert schema.classification == "json"
    assert schema.records == 1
    assert schema.compression == "none"
    assert [(c.name, c.type) for c in schema.columns] == [
        ("symbol", "string"),
        ("close", "double"),
        ("volume", "int"),
        ("open", "boolean"),
        ("tags", "array<string>"),
    ]


def test_json_array_of_objects_counts_each_object() -> None:
    data = json.dumps([{"a": 1}, {"a": 2, "b": "x"}, {"a": 3}]).encode()
    schema = infer_file(data, name="arr.json")
    assert schema.records == 3
    assert cols(data) == [("a", "int"), ("b", "string")]


def test_json_lines_widen_across_records() -> None:
    lines = b'{"n": 1}\n{"n": 3000000000}\n\n{"n": 2.5}\n'
    schema = infer_file(lines, name="x.jsonl")
    assert schema.records == 3
    assert cols(lines) == [("n", "double")]


def test_json_ints_are_int_then_bigint() -> None:
    assert cols(b'{"a": 2147483647, "b": 2147483648}') == [("a", "int"), ("b", "bigint")]


def test_json_nested_structs_are_unioned() -> None:
    lines = b'{"p": {"a": 1, "s": {"x": "1"}}}\n{"p": {"b": "t", "s": {"y": 2}}}\n'
    assert cols(lines) == [("p", "struct<a:int,s:struct<x:string,y:int>,b:string>")]


def test_json_number_then_string_gives_string() -> None:
    assert cols(b'{"v": 1}\n{"v": "1.5"}\n') == [("v", "string")]


def test_json_null_only_is_string_but_kept_void_unfinalized() -> None:
    data = b'{"a": null, "b": [], "c": {}}\n'
    assert cols(data) == [("a", "string"), ("b", "array<string>"), ("c", "string")]
    raw = infer_file(data, name="f", finalize=False).columns
    assert [c.type for c in raw] == ["void", "array<void>", "struct<>"]


def test_gzip_is_detected_by_magic_not_by_name() -> None:
    data = gzip.compress(b'{"a": 1}\n{"a": 2}\n')
    schema = infer_file(data, name="no-extension")
    assert (schema.classification, schema.compression, schema.records) == ("json", "gzip", 2)


def test_bzip2_is_detected() -> None:
    schema = infer_file(bz2.compress(b'{"a": 1}\n'), name="f")
    assert schema.compression == "bzip2"


def test_struct_field_names_needing_quotes_round_trip() -> None:
    [(_, kind)] = cols(b'{"p": {"EUR/USD": 1, "x y": 2, "a:b": 3}}')
    assert kind == "struct<EUR/USD:int,`x y`:int,`a:b`:int>"
    assert merge_types(kind, "struct<`x y`:double>") == (
        "struct<EUR/USD:int,`x y`:double,`a:b`:int>"
    )


def test_broken_json_lines_is_not_json() -> None:
    with pytest.raises(ConfigError, match=r"f: cannot be classified .*not json: line 2"):
        infer_file(b'{"a": 1}\n{"a": \n', name="f", fmt="json")


# --- CSV -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t", "\x01"])
def test_csv_delimiters_with_header(delimiter: str) -> None:
    text = "\n".join(
        delimiter.join(row)
        for row in [
            ("Day", "Close", "Volume", "Ok"),
            ("2024-01-02", "1.5", "10", "true"),
            ("2024-01-03", "2", "20", "false"),
        ]
    )
    schema = infer_file(text.encode(), name="p.csv")
    assert schema.classification == "csv"
    assert schema.delimiter == delimiter
    assert schema.has_header is True
    assert schema.records == 2
    assert [(c.name, c.type) for c in schema.columns] == [
        ("day", "string"),
        ("close", "double"),
        ("volume", "bigint"),
        ("ok", "boolean"),
    ]


def test_csv_without_header_gets_col0_names() -> None:
    schema = infer_file(b"AAPL;1.5;10\nMSFT;2.5;20\n", name="p.csv")
    assert schema.has_header is False
    assert schema.records == 2
    assert [(c.name, c.type) for c in schema.columns] == [
        ("col0", "string"),
        ("col1", "double"),
        ("col2", "bigint"),
    ]


def test_csv_all_string_columns_have_no_header_as_in_glue() -> None:
    # Glue: a header is only detected when some data column is not a string.
    schema = infer_file(b"name,city\nann,paris\nbob,rome\n", name="p.csv")
    assert schema.has_header is False
    assert schema.records == 3
    assert [c.name for c in schema.columns] == ["col0", "col1"]


def test_csv_numeric_first_row_is_data() -> None:
    schema = infer_file(b"1,2\n3,4.5\n", name="p.csv")
    assert (schema.has_header, schema.records) == (False, 2)
    assert [(c.name, c.type) for c in schema.columns] == [("col0", "bigint"), ("col1", "double")]


def test_csv_quoted_delimiters_and_empty_cells() -> None:
    data = b'id,label,price\n1,"a, b",\n2,c,3.5\n'
    schema = infer_file(data, name="p.csv")
    assert schema.delimiter == ","
    assert [(c.name, c.type) for c in schema.columns] == [
        ("id", "bigint"),
        ("label", "string"),
        ("price", "double"),
    ]


def test_gzip_csv() -> None:
    schema = infer_file(gzip.compress(b"a,b\n1,2\n"), name="x.csv.gz")
    assert (schema.classification, schema.compression, schema.has_header) == ("csv", "gzip", True)


def test_single_column_text_is_not_classified() -> None:
    with pytest.raises(ConfigError, match="cannot be classified"):
        infer_file(b"just\nwords\nhere\n", name="notes.txt")


# --- Parquet -------------------------------------------------------------------------------------


def test_parquet_schema_from_footer(tmp_path: Path) -> None:
    table = pa.table(
        {
            "symbol": pa.array(["AAPL", "MSFT"]),
            "close": pa.array([1.5, 2.5]),
            "volume": pa.array([1, 2], type=pa.int64()),
            "n32": pa.array([1, 2], type=pa.int32()),
            "ok": pa.array([True, False]),
            "day": pa.array([None, None], type=pa.date32()),
            "tags": pa.array([["a"], []], type=pa.list_(pa.string())),
            "meta": pa.array([{"k": 1}, {"k": 2}]),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    schema = infer_file(buffer.getvalue(), name="part-0.parquet")
    assert (schema.classification, schema.records, schema.compression) == ("parquet", 2, "none")
    assert [(c.name, c.type) for c in schema.columns] == [
        ("symbol", "string"),
        ("close", "double"),
        ("volume", "bigint"),
        ("n32", "int"),
        ("ok", "boolean"),
        ("day", "date"),
        ("tags", "array<string>"),
        ("meta", "struct<k:bigint>"),
    ]


def test_bad_parquet_names_the_file() -> None:
    with pytest.raises(ConfigError, match=r"x\.parquet: is not a readable Parquet file"):
        infer_file(b"PAR1garbage", name="x.parquet")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="format 'xml' is not known"):
        infer_file(b"<a/>", name="f", fmt="xml")


# --- merging -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("int", "int", "int"),
        ("int", "bigint", "bigint"),
        ("bigint", "int", "bigint"),
        ("int", "double", "double"),
        ("bigint", "double", "double"),
        ("tinyint", "smallint", "smallint"),
        ("float", "double", "double"),
        ("decimal(10,2)", "int", "double"),
        ("int", "string", "string"),
        ("double", "boolean", "string"),
        ("date", "timestamp", "timestamp"),
        ("void", "bigint", "bigint"),
        ("array<int>", "array<double>", "array<double>"),
        ("array<int>", "int", "string"),
        ("map<string,int>", "map<string,bigint>", "map<string,bigint>"),
        ("struct<a:int>", "struct<b:string>", "struct<a:int,b:string>"),
        ("struct<a:int,b:string>", "struct<a:string>", "struct<a:string,b:string>"),
        ("struct<a:int>", "string", "string"),
        ("array<struct<a:int>>", "array<struct<b:int>>", "array<struct<a:int,b:int>>"),
    ],
)
def test_merge_types(a: str, b: str, expected: str) -> None:
    assert merge_types(a, b) == expected


def test_merge_schemas_keeps_order_and_appends_new_columns() -> None:
    merged = merge_schemas(
        [Column("a", "int"), Column("b", "string")],
        [Column("C", "double"), Column("A", "bigint")],
    )
    assert [(c.name, c.type) for c in merged] == [("a", "bigint"), ("b", "string"), ("C", "double")]


def test_finalize_type() -> None:
    assert finalize_type("array<struct<a:void>>") == "array<struct<a:string>>"
