"""Classification of API answers: real recorded bodies and the edge cases of reference §2 and §4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dataflow.errors import (
    AuthError,
    DailyLimitError,
    RateLimitError,
    RequestError,
    ServerError,
    TransportError,
)
from dataflow.sources.twelvedata.classify import AUTH_MESSAGE, classify

SAMPLES = Path(__file__).parents[2] / "fixtures" / "twelvedata-samples"


def cl_sample(name: str) -> bytes:
    """A real recorded API body (see SOURCES.md next to the samples)."""
    return (SAMPLES / name).read_bytes()


# (sample file, HTTP status, endpoint, requested symbols) -> (ok, error class, is_batch,
#  {symbol: (ok, rows)})
RECORDED: list[tuple[str, int, str, list[str], bool, type | None, bool, dict[str, Any]]] = [
    ("time_series__intraday_1min_aapl.json", 200, "time_series", ["AAPL"], True, None, False,
     {"AAPL": (True, None)}),
    ("time_series__batch_1h_spx_aapl.json", 200, "time_series", ["SPX", "AAPL"], True, None, True,
     {"SPX": (True, None), "AAPL": (True, None)}),
    ("price__ibm.json", 200, "price", ["IBM"], True, None, False, {"IBM": (True, 1)}),
    ("price__batch_aapl_msft.json", 200, "price", ["AAPL", "MSFT"], True, None, True,
     {"AAPL": (True, 1), "MSFT": (True, 1)}),
    ("quote__batch_two_invalid_symbols.json", 200, "quote", ["NOTFOUND1", "NOTFOUND2"], True,
     None, True, {"NOTFOUND1": (False, 0), "NOTFOUND2": (False, 0)}),
    ("stocks__aapl_show_plan.json", 200, "stocks", [], True, None, False, {}),
    ("exchange_rate__usd_jpy.json", 200, "exchange_rate", ["USD/JPY"], True, None, False,
     {"USD/JPY": (True, 1)}),
    # legacy: errors answered with HTTP 200 and the error in the body
    ("error__401_invalid_apikey.json", 200, "quote", ["AAPL"], False, AuthError, False,
     {"AAPL": (False, 0)}),
    ("error__429_minute_limit_basic_currexx.json", 200, "time_series", ["EUR/USD"], False,
     RateLimitError, False, {"EUR/USD": (False, 0)}),
    ("error__404_symbol_or_figi_missing_or_invalid.json", 200, "quote", ["X"], False,
     RequestError, False, {"X": (False, 0)}),
    # modern: real statuses
    ("error__400_invalid_interval.json", 400, "time_series", ["IBM"], False, RequestError, False,
     {"IBM": (False, 0)}),
    ("error__403_demo_key_restriction.json", 403, "statistics", ["AAPL"], False, RequestError,
     False, {"AAPL": (False, 0)}),
    ("error__404_nothing_found.json", 404, "stocks", [], False, RequestError, False, {}),
    ("error__429_minute_limit_basic.json", 429, "quote", ["A", "B"], False, RateLimitError, False,
     {"A": (False, 0), "B": (False, 0)}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "status", "endpoint", "requested", "ok", "error", "is_batch", "symbols"),
    RECORDED,
    ids=[f"{case[0]}-{case[1]}" for case in RECORDED],
)
def test_recorded_answers(
    name: str, status: int, endpoint: str, requested: list[str], ok: bool, error: type | None,
    is_batch: bool, symbols: dict[str, Any],
) -> None:  # fmt: skip
    out = classify(status, cl_sample(name), endpoint=endpoint, requested=requested)
    assert (out.ok, out.is_batch, out.status_code) == (ok, is_batch, status)
    assert type(out.error) is error if error else out.error is None, out.error
    assert set(out.per_symbol) == set(symbols)
    for symbol, (sym_ok, rows) in symbols.items():
        result = out.per_symbol[symbol]
        assert result.ok is sym_ok, result.error
        assert (result.error is None) is sym_ok
        if rows is not None:
            assert result.rows == rows
        elif sym_ok:
            assert result.rows == len(result.payload["values"]) > 0


def test_single_series_counts_rows_and_keeps_the_payload() -> None:
    body = cl_sample("time_series__intraday_1min_aapl.json")
    out = classify(200, body, endpoint="time_series", requested=["AAPL"])
    assert out.per_symbol["AAPL"].payload is out.payload
    assert out.per_symbol["AAPL"].rows == len(out.payload["values"])


def test_a_bad_symbol_in_a_batch_fails_alone() -> None:
    body = (
        b'{"AAPL":{"meta":{"symbol":"AAPL"},"values":[{"datetime":"2024-01-02"}],"status":"ok"},'
        b'"INVALID":{"code":400,"message":"**symbol** not found: INVALID.","status":"error",'
        b'"meta":{"symbol":"AAPL,INVALID","interval":"1day","exchange":""}}}'
    )
    out = classify(200, body, endpoint="time_series", requested=["AAPL", "INVALID"])
    assert out.ok
    assert out.is_batch
    assert out.error is None
    assert out.per_symbol["AAPL"].ok
    assert out.per_symbol["AAPL"].rows == 1
    bad = out.per_symbol["INVALID"]
    assert isinstance(bad.error, RequestError)
    assert "time_series INVALID" in str(bad.error)
    assert bad.error.code == 400
    assert out.failed_symbols == ["INVALID"]


def test_a_batch_under_an_error_status_still_splits_per_symbol() -> None:
    body = b'{"A":{"code":404,"message":"nope","status":"error"},"B":{"price":"1"}}'
    out = classify(400, body, endpoint="price", requested=["A", "B"])
    assert not out.ok
    assert isinstance(out.error, RequestError)
    assert out.per_symbol["B"].ok
    assert not out.per_symbol["A"].ok


def test_a_symbol_missing_from_a_batch_answer_is_an_error_for_that_symbol() -> None:
    out = classify(200, b'{"A":{"price":"1"},"b":{"price":"2"}}', endpoint="price",
                   requested=["A", "B", "C"])  # fmt: skip
    assert out.per_symbol["A"].ok
    assert out.per_symbol["B"].ok
    assert isinstance(out.per_symbol["C"].error, RequestError)


def test_price_is_a_field_not_a_symbol_when_one_symbol_was_asked() -> None:
    out = classify(200, b'{"price":"146.55"}', endpoint="price", requested=["PRICE"])
    assert not out.is_batch
    assert out.per_symbol["PRICE"].payload == {"price": "146.55"}


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        (
            429,
            '{"code":429,"message":"You have run out of API credits for the current day.",'
            '"status":"error"}',
            DailyLimitError,
            429,
        ),
        (
            200,
            '{"code":429,"message":"out of API credits for the day","status":"error"}',
            DailyLimitError,
            429,
        ),
        (
            429,
            '{"code":429,"message":"run out of API credits for the current minute",'
            '"status":"error"}',
            RateLimitError,
            429,
        ),
        (500, '{"code":500,"message":"Internal server error","status":"error"}', ServerError, 500),
        (502, "<html><body>Bad gateway</body></html>", ServerError, 502),
        (520, "", ServerError, 520),
        (429, "Too Many Requests", RateLimitError, 429),
        (
            414,
            '{"code":414,"message":"Input parameter array exceeds the allowed length",'
            '"status":"error"}',
            RequestError,
            414,
        ),
        (200, '{"values":[{"datetime":"2024-01-0', TransportError, None),
        (200, "", TransportError, None),
        (200, '{"status":"error","message":"odd"}', RequestError, 400),
        (200, '{"code":500,"message":"x"}', ServerError, 500),
        (401, "", AuthError, 401),
    ],
)
def test_error_mapping(status: int, body: str, expected: type, code: int | None) -> None:
    out = classify(status, body, endpoint="quote", requested=["AAPL"])
    assert not out.ok
    assert type(out.error) is expected, out.error
    assert getattr(out.error, "code", None) == code
    assert not out.per_symbol["AAPL"].ok


@pytest.mark.parametrize(
    "body",
    [
        b'{"data":[],"status":"ok"}',  # an empty list is data, not an error
        b'{"code":200,"status":"ok","data":[{"symbol":"A"}]}',
        b'{"count":1,"data":[{"symbol":"A"}],"code":true}',  # a bool is no error code
    ],
)
def test_not_errors(body: bytes) -> None:
    assert classify(200, body, endpoint="stocks", requested=[]).ok


def test_market_state_bare_array_and_catalogue_rows() -> None:
    out = classify(200, b'[{"name":"NYSE"},{"name":"LSE"}]', endpoint="market_state",
                   requested=[])  # fmt: skip
    assert out.ok
    assert out.payload[1]["name"] == "LSE"
    out = classify(200, b'{"meta":{},"earnings":[{},{},{}],"status":"ok"}', endpoint="earnings",
                   requested=["AAPL"])  # fmt: skip
    assert out.per_symbol["AAPL"].rows == 3


def test_401_message_explains_the_fix_and_never_shows_the_key() -> None:
    body = '{"code":401,"message":"**apikey** sk-secret-123 is incorrect","status":"error"}'
    out = classify(401, body, endpoint="quote", requested=["AAPL"], secrets=["sk-secret-123"])
    assert isinstance(out.error, AuthError)
    text = str(out.error)
    assert text.startswith(AUTH_MESSAGE)
    assert "sk-secret-123" not in text
    assert "***" in text


def test_csv_bodies_are_data_when_csv_was_asked_for() -> None:
    body = b"symbol;name\nAAPL;Apple"
    assert classify(200, body, endpoint="stocks", requested=[], expect_json=False).ok
    assert isinstance(classify(200, body, endpoint="stocks", requested=[]).error, TransportError)
