"""Decide what an answer of the Twelve Data API means: data, or which kind of error.

The API has answered errors both with a real HTTP status and with HTTP 200 plus an error body
(reference §2), so an answer is an error when the status is not 2xx **or** the JSON object
says ``"status": "error"`` **or** carries an integer ``code`` >= 400. The body ``code`` decides
the kind::

    401                      -> AuthError        stop the run
    429 "current minute"     -> RateLimitError   wait for the next window, retry
    429 "day"                -> DailyLimitError  stop for the day
    400 403 404 414 (other)  -> RequestError     never retried
    >= 500                   -> ServerError      retried
    not JSON / truncated     -> TransportError   retried

A request for several symbols comes back keyed by symbol, each value a normal payload **or an
error object** (reference §4); every symbol gets its own :class:`SymbolResult`, so one bad symbol
fails alone.

Example:
    >>> out = classify(200, b'{"AAPL":{"price":"1.0"},"XX":{"code":400,"message":"bad",'
    ...                b'"status":"error"}}', endpoint="price", requested=["AAPL", "XX"])
    >>> out.ok, out.is_batch, out.per_symbol["AAPL"].ok, type(out.per_symbol["XX"].error).__name__
    (True, True, True, 'RequestError')
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from dataflow.errors import (
    ApiError,
    AuthError,
    DailyLimitError,
    RateLimitError,
    RequestError,
    ServerError,
    TransportError,
)

AUTH_MESSAGE = (
    "Twelve Data rejected the API key (401) — check sources.twelvedata.api_key or "
    "TWELVEDATA_API_KEY"
)
# Keys of a single-symbol payload; a batch body has none of them at the top level (reference §4).
_SINGLE_KEYS = frozenset({"meta", "price", "symbol", "status", "values", "data", "code", "message"})
_DAILY = re.compile(r"current day|for the day|per day|daily", re.IGNORECASE)
_ROW_KEYS = ("values", "data", "earnings", "dividends", "splits")
_MAX_MESSAGE = 300

SourceFailure = ApiError | TransportError


@dataclass
class SymbolResult:
    """The answer for one symbol of a request.

    Attributes:
        symbol: the symbol as requested.
        ok: the symbol's payload is data, not an error.
        payload: the symbol's part of the body (the whole body for a single-symbol request).
        error: the error for this symbol, if any.
        rows: data rows: ``len(values)`` / ``len(data)``, 1 for a snapshot, 0 on error.
    """

    symbol: str
    ok: bool
    payload: Any
    error: SourceFailure | None = None
    rows: int = 0


@dataclass
class Outcome:
    """What one HTTP answer means.

    Attributes:
        status_code: the HTTP status.
        ok: no error for the request as a whole (symbols of a batch may still have failed).
        error: the request's error, if any.
        payload: the parsed JSON body (``None`` when it is not JSON).
        per_symbol: one result per requested symbol (empty for catalogue requests).
        is_batch: the body is keyed by symbol.
    """

    status_code: int
    ok: bool
    error: SourceFailure | None
    payload: Any
    per_symbol: dict[str, SymbolResult] = field(default_factory=dict)
    is_batch: bool = False

    @property
    def failed_symbols(self) -> list[str]:
        """Symbols whose part of the answer is an error."""
        return [s for s, r in self.per_symbol.items() if not r.ok]


def classify(
    status_code: int,
    body: bytes | str,
    *,
    endpoint: str,
    requested: Sequence[str],
    secrets: Sequence[str] = (),
    expect_json: bool = True,
) -> Outcome:
    """Classify one HTTP answer of the API.

    Args:
        status_code: the HTTP status.
        body: the raw body.
        endpoint: the endpoint name, used in error messages.
        requested: the symbols of the request, in request order (may be empty).
        secrets: strings to blank out of any message (the API key).
        expect_json: ``False`` for ``format=CSV`` requests: a 2xx text body is data.

    Example:
        >>> classify(200, '{"code":401,"message":"no key","status":"error"}',
        ...          endpoint="quote", requested=["AAPL"]).error.__class__.__name__
        'AuthError'
    """
    requested = list(dict.fromkeys(requested))
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        if not expect_json and 200 <= status_code < 300:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            results = {s: SymbolResult(s, True, text, rows=1) for s in requested}
            return Outcome(status_code, True, None, text, results, is_batch=len(requested) > 1)
        error = _non_json_error(status_code, body, endpoint, secrets)
        return _failed(status_code, error, None, requested)

    if len(requested) > 1 and isinstance(payload, dict) and not (_SINGLE_KEYS & payload.keys()):
        return _batch(status_code, payload, endpoint, requested, secrets)

    if _is_error(status_code, payload):
        error = _api_error(status_code, payload, endpoint, None, secrets)
        return _failed(status_code, error, payload, requested)

    per_symbol: dict[str, SymbolResult] = {}
    if len(requested) == 1:
        per_symbol[requested[0]] = SymbolResult(requested[0], True, payload, rows=_rows(payload))
    elif requested:
        # several symbols asked, one single-symbol answer: attribute it to the symbol it names
        named = _named_symbol(payload)
        if named in requested:
            per_symbol[named] = SymbolResult(named, True, payload, rows=_rows(payload))
    return Outcome(status_code, True, None, payload, per_symbol, is_batch=False)


def _is_error(status_code: int, payload: Any) -> bool:
    if not 200 <= status_code < 300:
        return True
    if not isinstance(payload, dict):
        return False
    code = payload.get("code")
    return payload.get("status") == "error" or (_is_int(code) and code >= 400)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _batch(
    status_code: int, payload: dict[str, Any], endpoint: str, requested: list[str],
    secrets: Sequence[str],
) -> Outcome:  # fmt: skip
    by_lower = {str(k).lower(): k for k in payload}
    per_symbol: dict[str, SymbolResult] = {}
    for symbol in requested:
        key = symbol if symbol in payload else by_lower.get(symbol.lower())
        if key is None:
            error: ApiError = RequestError(
                f"{endpoint} {symbol}: the batch answer has no entry for this symbol",
                code=404, http_status=status_code, endpoint=endpoint,
            )  # fmt: skip
            per_symbol[symbol] = SymbolResult(symbol, False, None, error)
            continue
        part = payload[key]
        if not isinstance(part, dict | list):
            error = RequestError(
                f"{endpoint} {symbol}: the batch answer for this symbol is empty ({part!r:.40})",
                code=404, http_status=status_code, endpoint=endpoint, payload=part,
            )  # fmt: skip
            per_symbol[symbol] = SymbolResult(symbol, False, part, error)
        elif _is_error(200, part):
            error = _api_error(status_code, part, endpoint, symbol, secrets)
            per_symbol[symbol] = SymbolResult(symbol, False, part, error)
        else:
            per_symbol[symbol] = SymbolResult(symbol, True, part, rows=_rows(part))
    if 200 <= status_code < 300:
        return Outcome(status_code, True, None, payload, per_symbol, is_batch=True)
    # a keyed body under an error status: the request failed as a whole, for the first reason given
    errors = [r.error for r in per_symbol.values() if r.error is not None]
    whole = errors[0] if errors else _api_error(status_code, {}, endpoint, None, secrets)
    return Outcome(status_code, False, whole, payload, per_symbol, is_batch=True)


def _failed(status_code: int, error: SourceFailure, payload: Any, requested: list[str]) -> Outcome:
    per_symbol = {s: SymbolResult(s, False, payload, error) for s in requested}
    return Outcome(status_code, False, error, payload, per_symbol, is_batch=False)


def _api_error(
    status_code: int, payload: Any, endpoint: str, symbol: str | None, secrets: Sequence[str]
) -> ApiError:
    body = payload if isinstance(payload, dict) else {}
    body_code = body.get("code")
    if _is_int(body_code) and body_code >= 400:
        code = int(body_code)
    elif status_code >= 400:
        code = status_code
    else:
        code = 400  # "status":"error" without a usable code: a request the API refuses
    message = _clean(str(body.get("message") or f"HTTP {status_code}"), secrets)
    where = f"{endpoint} {symbol}" if symbol else endpoint
    kw: dict[str, Any] = {
        "code": code, "http_status": status_code, "endpoint": endpoint, "payload": payload,
    }  # fmt: skip
    if code == 401:
        return AuthError(f"{AUTH_MESSAGE} (API said: {message})", **kw)
    if code == 429:
        if _DAILY.search(message):
            return DailyLimitError(f"{where}: daily API credits exhausted: {message}", **kw)
        return RateLimitError(f"{where}: API credits for the minute exhausted: {message}", **kw)
    text = f"{where}: {message} (code {code}, HTTP {status_code})"
    if code >= 500:
        return ServerError(text, **kw)
    return RequestError(text, **kw)


def _non_json_error(
    status_code: int, body: bytes | str, endpoint: str, secrets: Sequence[str]
) -> SourceFailure:
    if status_code >= 400:
        # a gateway's HTML page (502/520) or a plain-text error: the status says enough
        return _api_error(status_code, {"message": f"HTTP {status_code}, non-JSON body"},
                          endpoint, None, secrets)  # fmt: skip
    size = len(body)
    return TransportError(
        f"{endpoint}: the API answered HTTP {status_code} with a body that is not JSON "
        f"({size} bytes; truncated or a proxy page)"
    )


def _clean(message: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    message = " ".join(message.split())
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def _rows(payload: Any) -> int:
    if isinstance(payload, list):
        return len(payload)
    if isinstance(payload, dict):
        for key in _ROW_KEYS:
            value = payload.get(key)
            if isinstance(value, list):
                return len(value)
        return 1
    return 0


def _named_symbol(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    meta = payload.get("meta")
    named = meta.get("symbol") if isinstance(meta, dict) else payload.get("symbol")
    return named if isinstance(named, str) else None


__all__ = ["AUTH_MESSAGE", "Outcome", "SourceFailure", "SymbolResult", "classify"]
