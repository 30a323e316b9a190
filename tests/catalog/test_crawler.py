"""The crawler over generated trees and real raw-zone envelopes: schema, partitions, policies."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflow.catalog import (
    CrawlResult,
    DeleteBehavior,
    ExternalCatalog,
    RecrawlPolicy,
    UpdateBehavior,
    crawl,
    crawl_raw_zone,
)
from dataflow.catalog.crawler import DEPRECATED_PARAMETER
from dataflow.errors import ConfigError
from dataflow.metadata import MetadataDB, open_metadata
from dataflow.storage import LocalStore, RawWriter, import_responses, make_envelope

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "twelvedata-samples"


@pytest.fixture
def cr_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "wh")


@pytest.fixture
def cr_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'md' / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def cr_catalog(cr_db: MetadataDB) -> ExternalCatalog:
    return ExternalCatalog(cr_db)


def put_lines(store: LocalStore, key: str, *records: dict[str, Any]) -> None:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    store.put_bytes(key, data, overwrite=True)


def run(store: LocalStore, catalog: ExternalCatalog, **kwargs: Any) -> CrawlResult:
    return crawl(store, "sales", catalog=catalog, database="shop", table="sales", **kwargs)


def names(result_columns: list[Any]) -> list[str]:
    return [c.name for c in result_columns]


@pytest.fixture
def cr_sales(cr_store: LocalStore, cr_catalog: ExternalCatalog) -> LocalStore:
    """sales/year=YYYY/month=MM/*.json, crawled once."""
    put_lines(cr_store, "sales/year=2024/month=01/a.json", {"id": 1, "amount": 10})
    put_lines(cr_store, "sales/year=2024/month=02/b.json", {"id": 2, "amount": 2.5})
    run(cr_store, cr_catalog)
    return cr_store


# --- a first crawl -------------------------------------------------------------------------------


def test_first_crawl_registers_table_partitions_and_glue_parameters(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_store, "sales/year=2024/month=01/a.json", {"id": 1, "amount": 10}, {"id": 2})
    put_lines(cr_store, "sales/year=2024/month=02/b.json", {"id": 3, "amount": 2.5})
    cr_store.put_bytes("sales/_SUCCESS", b"")
    result = run(cr_store, cr_catalog)
    assert result.created
    assert result.changed
    assert (result.files, result.records, result.version, result.files_read) == (2, 3, 1, 2)
    assert result.partitions_added == [["2024", "01"], ["2024", "02"]]
    table = cr_catalog.get("shop", "sales")
    assert [(c.name, c.type) for c in table.columns] == [("id", "int"), ("amount", "double")]
    assert [(c.name, c.type) for c in table.partition_keys] == [
        ("year", "string"),
        ("month", "string"),
    ]
    assert table.location == str(cr_store.root / "sales") + "/"
    assert table.table_type == "external"
    size = sum(o.size for o in cr_store.list("sales/year"))
    assert table.parameters == {
        "classification": "json",
        "compressionType": "none",
        "typeOfData": "file",
        "recordCount": "3",
        "averageRecordSize": str(size // 3),
        "objectCount": "2",
        "sizeKey": str(size),
        "UPDATED_BY_CRAWLER": "dataflow",
        "CrawlerSchemaSerializerVersion": "1.0",
        "CrawlerSchemaDeserializerVersion": "1.0",
    }
    assert table.last_crawled_at is not None
    parts = cr_catalog.partitions("shop", "sales")
    assert [p.values for p in parts] == [["2024", "01"], ["2024", "02"]]
    assert parts[0].location == str(cr_store.root / "sales/year=2024/month=01") + "/"
    assert parts[0].parameters["recordCount"] == "2"
    assert cr_catalog.databases() == ["shop"]
    assert [v["version"] for v in cr_catalog.versions("shop", "sales")] == [1]


def test_types_widen_across_files(cr_store: LocalStore, cr_catalog: ExternalCatalog) -> None:
    put_lines(cr_store, "sales/a.json", {"n": 1, "mixed": 1, "s": {"a": 1}, "big": 1})
    put_lines(cr_store, "sales/b.json", {"n": 1.5, "mixed": "x", "s": {"b": "y"}})
    put_lines(cr_store, "sales/c.json", {"big": 2**40})
    run(cr_store, cr_catalog)
    table = cr_catalog.get("shop", "sales")
    assert [(c.name, c.type) for c in table.columns] == [
        ("n", "double"),
        ("mixed", "string"),
        ("s", "struct<a:int,b:string>"),
        ("big", "bigint"),
    ]
    assert table.partition_keys == []
    assert cr_catalog.partitions("shop", "sales") == []


def test_null_in_one_file_is_typed_by_another(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_store, "sales/a.json", {"x": None})
    put_lines(cr_store, "sales/b.json", {"x": 5})
    run(cr_store, cr_catalog)
    assert cr_catalog.get("shop", "sales").columns[0].type == "int"


def test_unnamed_partitions_and_csv_parameters(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    cr_store.put_bytes("logs/2024/01/a.csv", b"day;close\n2024-01-02;1.5\n")
    cr_store.put_bytes("logs/2024/02/b.csv", b"day;close\n2024-02-01;2\n2024-02-02;3\n")
    result = crawl(cr_store, "logs", catalog=cr_catalog, database="db", table="logs")
    table = cr_catalog.get("db", "logs")
    assert [k.name for k in table.partition_keys] == ["partition_0", "partition_1"]
    assert [(c.name, c.type) for c in table.columns] == [("day", "string"), ("close", "double")]
    assert result.records == 3
    params = table.parameters
    assert params["classification"] == "csv"
    assert params["delimiter"] == ";"
    assert params["skip.header.line.count"] == "1"
    assert params["columnsOrdered"] == "true"


def test_unclassifiable_files_are_skipped_and_not_read_again(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_store, "sales/a.json", {"id": 1})
    cr_store.put_bytes("sales/notes.txt", b"one\ntwo\n")
    first = run(cr_store, cr_catalog)
    assert [s.split(":")[0] for s in first.skipped] == ["sales/notes.txt"]
    second = run(cr_store, cr_catalog)
    assert second.files_read == 0
    assert second.skipped == first.skipped


def test_nothing_to_crawl_is_a_config_error(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    with pytest.raises(ConfigError, match=r"nothing to crawl at .*no data files there"):
        run(cr_store, cr_catalog)


def test_bad_names_and_options(cr_sales: LocalStore, cr_catalog: ExternalCatalog) -> None:
    with pytest.raises(ConfigError, match="table name 'bad-name'"):
        crawl(cr_sales, "sales", catalog=cr_catalog, database="shop", table="bad-name")
    with pytest.raises(ConfigError, match="--update-behavior 'MERGE' is not known"):
        run(cr_sales, cr_catalog, update_behavior="MERGE")
    with pytest.raises(ConfigError, match="format 'xml'"):
        run(cr_sales, cr_catalog, fmt="xml")


# --- recrawls and versions -----------------------------------------------------------------------


def test_noop_recrawl_reads_nothing_and_archives_nothing(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    before = cr_catalog.get("shop", "sales")
    result = run(cr_sales, cr_catalog)
    assert not result.changed
    assert (result.files_read, result.version, result.records) == (0, 1, 2)
    after = cr_catalog.get("shop", "sales")
    assert after.version == 1
    assert after.updated_at == before.updated_at
    assert after.last_crawled_at is not None
    assert before.last_crawled_at is not None
    assert after.last_crawled_at > before.last_crawled_at
    assert len(cr_catalog.versions("shop", "sales")) == 1


def test_more_rows_update_statistics_without_a_version(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_sales, "sales/year=2024/month=01/c.json", {"id": 9, "amount": 1}, {"id": 10})
    result = run(cr_sales, cr_catalog)
    assert not result.changed
    assert result.files_read == 1
    table = cr_catalog.get("shop", "sales")
    assert (table.version, table.parameters["recordCount"], table.parameters["objectCount"]) == (
        1,
        "4",
        "3",
    )
    jan = cr_catalog.partitions("shop", "sales")[0]
    assert jan.parameters["recordCount"] == "3"


def test_update_in_database_applies_and_archives_each_change(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_sales, "sales/year=2024/month=03/c.json", {"id": 3000000000, "note": "x"})
    result = run(cr_sales, cr_catalog)
    assert names(result.columns_added) == ["note"]
    assert [(c.name, c.old_type, c.new_type) for c in result.columns_changed] == [
        ("id", "int", "bigint")
    ]
    assert result.partitions_added == [["2024", "03"]]
    assert result.version == 2
    # The file with "amount" goes away: the column is removed.
    (cr_sales.root / "sales/year=2024/month=01/a.json").unlink()
    (cr_sales.root / "sales/year=2024/month=02/b.json").unlink()
    put_lines(cr_sales, "sales/year=2024/month=02/b.json", {"id": 2})
    removed = run(cr_sales, cr_catalog)
    assert names(removed.columns_removed) == ["amount"]
    assert removed.partitions_deprecated == [["2024", "01"]]
    versions = cr_catalog.versions("shop", "sales")
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [names(v["columns"]) for v in versions] == [
        ["id", "amount"],
        ["id", "amount", "note"],
        ["id", "note"],
    ]
    assert all(isinstance(v["archived_at"], dt.datetime) for v in versions)
    assert versions[0]["archived_at"] <= versions[1]["archived_at"] <= versions[2]["archived_at"]


def test_update_log_reports_but_changes_nothing_except_new_partitions(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_sales, "sales/year=2024/month=03/c.json", {"id": "x", "extra": True})
    result = run(cr_sales, cr_catalog, update_behavior=UpdateBehavior.LOG)
    assert result.columns_added == []
    assert result.columns_changed == []
    assert result.partitions_added == [["2024", "03"]]
    assert result.version == 1
    assert any(line.startswith("column added extra boolean") for line in result.logged_only)
    assert any(line.startswith("column changed id int -> string") for line in result.logged_only)
    table = cr_catalog.get("shop", "sales")
    assert names(table.columns) == ["id", "amount"]
    assert table.version == 1
    assert [p.values for p in cr_catalog.partitions("shop", "sales")][-1] == ["2024", "03"]


@pytest.mark.parametrize(
    ("behavior", "removed", "deprecated", "remaining"),
    [
        (DeleteBehavior.DELETE_FROM_DATABASE, [["2024", "01"]], [], [["2024", "02"]]),
        (
            DeleteBehavior.DEPRECATE_IN_DATABASE,
            [],
            [["2024", "01"]],
            [["2024", "01"], ["2024", "02"]],
        ),
        (DeleteBehavior.LOG, [], [], [["2024", "01"], ["2024", "02"]]),
    ],
)
def test_delete_behaviors_for_vanished_partitions(
    cr_sales: LocalStore,
    cr_catalog: ExternalCatalog,
    behavior: DeleteBehavior,
    removed: list[list[str]],
    deprecated: list[list[str]],
    remaining: list[list[str]],
) -> None:
    (cr_sales.root / "sales/year=2024/month=01/a.json").unlink()
    result = run(cr_sales, cr_catalog, delete_behavior=behavior)
    assert result.partitions_removed == removed
    assert result.partitions_deprecated == deprecated
    parts = cr_catalog.partitions("shop", "sales")
    assert [p.values for p in parts] == remaining
    if behavior is DeleteBehavior.DEPRECATE_IN_DATABASE:
        assert DEPRECATED_PARAMETER in parts[0].parameters
        again = run(cr_sales, cr_catalog, delete_behavior=behavior)
        assert again.partitions_deprecated == []  # reported once
    if behavior is DeleteBehavior.LOG:
        assert result.logged_only == [
            "partition ['2024', '01'] has no data files any more (not removed: delete behavior LOG)"
        ]


def test_deprecated_partition_comes_back(cr_sales: LocalStore, cr_catalog: ExternalCatalog) -> None:
    (cr_sales.root / "sales/year=2024/month=01/a.json").unlink()
    run(cr_sales, cr_catalog)
    put_lines(cr_sales, "sales/year=2024/month=01/z.json", {"id": 5, "amount": 1})
    result = run(cr_sales, cr_catalog)
    assert result.partitions_added == [["2024", "01"]]
    assert DEPRECATED_PARAMETER not in cr_catalog.partitions("shop", "sales")[0].parameters


@pytest.mark.parametrize(
    "behavior",
    [
        DeleteBehavior.DEPRECATE_IN_DATABASE,
        DeleteBehavior.DELETE_FROM_DATABASE,
        DeleteBehavior.LOG,
    ],
)
def test_delete_behaviors_for_a_vanished_table(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog, behavior: DeleteBehavior
) -> None:
    for path in (cr_sales.root / "sales").rglob("*.json"):
        path.unlink()
    result = run(cr_sales, cr_catalog, delete_behavior=behavior)
    found = cr_catalog.find("shop", "sales")
    if behavior is DeleteBehavior.DELETE_FROM_DATABASE:
        assert result.deleted
        assert found is None
        assert result.partitions_removed == [["2024", "01"], ["2024", "02"]]
        assert cr_catalog.partitions("shop", "sales") == []
    elif behavior is DeleteBehavior.DEPRECATE_IN_DATABASE:
        assert result.deprecated
        assert result.version == 2
        assert found is not None
        assert found.deprecated
        assert DEPRECATED_PARAMETER in found.parameters
        # Data comes back: the table is in use again, as a new version.
        put_lines(cr_sales, "sales/year=2024/month=01/a.json", {"id": 1, "amount": 10})
        back = run(cr_sales, cr_catalog)
        table = cr_catalog.get("shop", "sales")
        assert (back.version, table.deprecated) == (3, False)
        assert DEPRECATED_PARAMETER not in table.parameters
    else:
        assert not result.changed
        assert found is not None
        assert not found.deprecated
        assert found.version == 1
        assert result.logged_only == [
            "the table has no data files any more (not deprecated: delete behavior LOG)"
        ]


def test_new_folders_only_reads_new_partitions_and_forces_log(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_sales, "sales/year=2024/month=01/more.json", {"id": "changed"})
    (cr_sales.root / "sales/year=2024/month=02/b.json").unlink()
    put_lines(cr_sales, "sales/year=2024/month=03/c.json", {"id": 3, "note": "n"})
    result = run(
        cr_sales,
        cr_catalog,
        recrawl=RecrawlPolicy.CRAWL_NEW_FOLDERS_ONLY,
        delete_behavior=DeleteBehavior.DELETE_FROM_DATABASE,
    )
    assert result.files_read == 1  # only the new folder month=03
    assert result.partitions_added == [["2024", "03"]]
    assert result.partitions_removed == []
    assert result.columns_added == []
    assert "column added note string (not applied: update behavior LOG)" in result.logged_only
    assert any("['2024', '02'] has no data files" in line for line in result.logged_only)
    table = cr_catalog.get("shop", "sales")
    assert names(table.columns) == ["id", "amount"]
    assert table.version == 1
    assert [p.values for p in cr_catalog.partitions("shop", "sales")] == [
        ["2024", "01"],
        ["2024", "02"],
        ["2024", "03"],
    ]


def test_new_folders_on_a_new_table_crawls_everything(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    put_lines(cr_store, "sales/year=2024/a.json", {"id": 1})
    result = run(cr_store, cr_catalog, recrawl="new-folders")
    assert result.created
    assert result.files_read == 1


def test_changed_file_is_read_again(cr_sales: LocalStore, cr_catalog: ExternalCatalog) -> None:
    put_lines(cr_sales, "sales/year=2024/month=01/a.json", {"id": 1, "amount": 10, "tag": "t"})
    result = run(cr_sales, cr_catalog)
    assert result.files_read == 1
    assert names(result.columns_added) == ["tag"]


def test_sample_files_reads_n_per_folder_and_estimates_records(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    for index in range(3):
        put_lines(cr_store, f"sales/year=2024/f{index}.json", {"id": index}, {"id": index})
    result = run(cr_store, cr_catalog, sample_files=1)
    assert result.files_read == 1
    assert (result.files, result.records) == (3, 6)


def test_partition_key_change_replaces_partitions(
    cr_sales: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    for path in (cr_sales.root / "sales").rglob("*.json"):
        path.unlink()
    put_lines(cr_sales, "sales/region=eu/a.json", {"id": 1, "amount": 1})
    result = run(cr_sales, cr_catalog)
    table = cr_catalog.get("shop", "sales")
    assert [k.name for k in table.partition_keys] == ["region"]
    assert result.version == 2
    assert result.partitions_removed == [["2024", "01"], ["2024", "02"]]
    assert [p.values for p in cr_catalog.partitions("shop", "sales")] == [["eu"]]


# --- the raw zone --------------------------------------------------------------------------------


def test_raw_zone_from_real_samples(cr_store: LocalStore, cr_catalog: ExternalCatalog) -> None:
    if not (SAMPLES / "SOURCES.md").is_file():
        pytest.skip(f"real API samples not found at {SAMPLES}")
    import_responses(
        cr_store,
        [
            SAMPLES / "time_series__daily_ibm_2021_no_mic_code.json",
            SAMPLES / "time_series__batch_1h_spx_aapl.json",
            SAMPLES / "error__400_symbol_not_found.json",
        ],
        endpoint="time_series",
        params={"interval": "1day"},
        run_id="r1",
    )
    import_responses(cr_store, [SAMPLES / "quote__aapl_2022.json"], endpoint="quote", run_id="r2")
    results = crawl_raw_zone(cr_store, cr_catalog)
    assert [r.table for r in results] == ["raw.quote", "raw.time_series"]
    assert all(r.created for r in results)
    table = cr_catalog.get("raw", "time_series")
    assert [(k.name, k.type) for k in table.partition_keys] == [("ingest_date", "string")]
    types = {c.name: c.type for c in table.columns}
    assert {"request", "status_code", "received_at", "payload", "symbols"} <= set(types)
    assert types["status_code"] == "int"
    assert types["symbols"] == "array<string>"
    payload = types["payload"]
    # Single-symbol, batch and error bodies unioned into one struct.
    assert payload.startswith("struct<")
    for field in ("meta:struct<", "values:array<struct<datetime:string", "code:int", "SPX:struct<"):
        assert field in payload
    assert table.parameters["compressionType"] == "gzip"
    assert table.parameters["recordCount"] == "3"
    [partition] = cr_catalog.partitions("raw", "time_series")
    assert partition.location.endswith(
        f"/raw/twelvedata/time_series/ingest_date={partition.values[0]}/"
    )
    again = crawl_raw_zone(cr_store, cr_catalog)
    assert [(r.files_read, r.changed) for r in again] == [(0, False), (0, False)]


def test_raw_zone_text_and_json_payloads_merge_to_string(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    def envelope(body: bytes, request_id: str) -> dict[str, Any]:
        return make_envelope(
            source="twelvedata",
            endpoint="price",
            path="/price",
            params={"symbol": "IBM", "apikey": "k"},
            status_code=200,
            headers={"api-credits-used": "1"},
            body=body,
            received_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
            run_id="r1",
            request_id=request_id,
            symbols=["IBM"],
        )

    for day, body in ((1, b'{"price":"146.5"}'), (2, b"<html>502 Bad Gateway</html>")):
        writer = RawWriter(
            cr_store, source="twelvedata", run_id=f"r{day}", ingest_date=dt.date(2024, 5, day)
        )
        writer.add(envelope(body, f"q{day}"))
        writer.flush()
    [result] = crawl_raw_zone(cr_store, cr_catalog, endpoints=["price"])
    assert result.partitions_added == [["2024-05-01"], ["2024-05-02"]]
    types = {c.name: c.type for c in cr_catalog.get("raw", "price").columns}
    assert types["payload"] == "string"
    assert types["headers"] == "struct<api-credits-used:string>"
    assert types["request"] == "struct<path:string,params:struct<symbol:string>>"


def test_raw_zone_skips_unknown_endpoints_and_manifests(
    cr_store: LocalStore, cr_catalog: ExternalCatalog
) -> None:
    cr_store.put_bytes("raw/twelvedata/_manifests/r1.json", b"{}")
    assert crawl_raw_zone(cr_store, cr_catalog, endpoints=["quote"]) == []
    assert crawl_raw_zone(cr_store, cr_catalog) == []
