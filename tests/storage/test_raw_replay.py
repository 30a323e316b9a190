"""`raw import`: real saved Twelve Data responses become envelopes, with a manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dataflow.errors import ConfigError
from dataflow.storage import (
    LocalStore,
    import_responses,
    iter_envelopes,
    list_raw,
    read_manifest,
)

# sample file -> (status_code, symbols, outcome, rows)
CASES = {
    "time_series__daily_ibm_2021_no_mic_code.json": (200, ["IBM"], "ok", 30),
    "time_series__batch_1h_spx_aapl.json": (200, ["SPX", "AAPL"], "ok", None),
    "price__batch_aapl_msft.json": (200, ["AAPL", "MSFT"], "ok", 2),
    "price__ibm.json": (200, [], "ok", 1),
    "exchange_rate__usd_jpy.json": (200, ["USD/JPY"], "ok", 1),
    "error__404_nothing_found.json": (404, [], "error", 0),
    "error__400_invalid_interval.json": (400, ["IBM"], "error", 0),
    "error__429_minute_limit_basic_currexx.json": (429, [], "error", 0),
    "quote__batch_two_invalid_symbols.json": (200, ["NOTFOUND1", "NOTFOUND2"], "error", 0),
    "batch__post_multi_endpoint_docs_example.json": (200, [], "ok", 1),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_import_of_a_real_sample(st_store: LocalStore, st_samples: Path, name: str) -> None:
    status, symbols, outcome, rows = CASES[name]
    path = st_samples / name
    endpoint = name.partition("__")[0]
    result = import_responses(st_store, [path], endpoint=endpoint)
    [record] = result.requests
    assert (record.status_code, record.symbols, record.outcome) == (status, symbols, outcome)
    if rows is not None:
        assert record.rows == rows
    [raw_file] = result.files
    assert record.file == raw_file.key
    [env] = iter_envelopes(st_store, raw_file.key)
    assert env["payload"] == json.loads(path.read_bytes()), "payload must be the body verbatim"
    assert env["payload_format"] == "json"
    assert env["status_code"] == status
    assert env["symbols"] == symbols
    assert env["imported_from"] == name
    assert env["request"] == {"path": f"/{endpoint}", "params": {}}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", env["received_at"])
    assert (not symbols) == bool(result.warnings)


def test_multi_symbol_time_series(st_store: LocalStore, st_samples: Path) -> None:
    path = st_samples / "time_series__batch_1h_spx_aapl.json"
    body = json.loads(path.read_bytes())
    result = import_responses(
        st_store,
        [path],
        endpoint="time_series",
        params={"interval": "1h", "apikey": "should-vanish"},
        run_id="import-test-0001",
    )
    [record] = result.requests
    assert record.rows == len(body["SPX"]["values"]) + len(body["AAPL"]["values"])
    assert record.params == {"interval": "1h"}
    [info] = list_raw(st_store, endpoint="time_series")
    assert info.run_id == "import-test-0001"
    assert info.seq == 1


def test_many_files_one_run_with_symbol_option(st_store: LocalStore, st_samples: Path) -> None:
    files = [st_samples / "price__ibm.json", st_samples / "price__batch_aapl_msft.json"]
    result = import_responses(st_store, files, endpoint="price", symbol="IBM")
    assert [r.symbols for r in result.requests] == [["IBM"], ["IBM"]]
    assert result.requests[0].params == {"symbol": "IBM"}
    assert result.warnings == []
    assert re.fullmatch(r"import-\d{8}T\d{6}Z-[0-9a-f]{4}", result.run_id)
    [raw_file] = result.files
    assert raw_file.lines == 2
    envelopes = list(iter_envelopes(st_store, raw_file.key))
    assert [e["request_id"] for e in envelopes] == [r.request_id for r in result.requests]
    manifest = read_manifest(st_store, "twelvedata", result.run_id)
    assert manifest.status == "succeeded"
    assert manifest.files == result.files
    assert manifest.requests == result.requests
    assert manifest.finished_at is not None
    assert result.manifest_key == f"raw/twelvedata/_manifests/{result.run_id}.json"


def test_a_non_json_file_is_rejected_and_nothing_written(
    st_store: LocalStore, st_samples: Path, tmp_path: Path
) -> None:
    text = tmp_path / "saved.html"
    text.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(ConfigError, match=r"saved\.html: is not JSON \(or is nested too deep"):
        import_responses(st_store, [st_samples / "price__ibm.json", text], endpoint="price")
    assert st_store.list() == []


def test_bad_inputs_are_config_errors(st_store: LocalStore, tmp_path: Path) -> None:
    good = tmp_path / "ok.json"
    good.write_text('{"price": "1"}')
    with pytest.raises(ConfigError, match="no such file"):
        import_responses(st_store, [good, tmp_path / "missing.json"], endpoint="price")
    with pytest.raises(ConfigError, match="is a folder"):
        import_responses(st_store, [tmp_path], endpoint="price")
    with pytest.raises(ConfigError, match="at least one FILE"):
        import_responses(st_store, [], endpoint="price")
    with pytest.raises(ConfigError, match="cannot name a raw-zone folder"):
        import_responses(st_store, [good], endpoint="time_series/cross")
    assert st_store.list() == []
