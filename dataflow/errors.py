"""The one exception tree of Dataflow.

Every error the library raises on purpose is a :class:`DataflowError`. Errors of the libraries
underneath (httpx, SQLAlchemy, fsspec, ...) are translated at one boundary per library with
``raise ... from exc``. The mixins :class:`TransientError` and :class:`TerminalError` tell the
retry logic whether trying again can help::

    DataflowError
    ├── ConfigError                 (Terminal)  bad dataflow.yaml, env or argument -> exit 2
    ├── SourceError
    │   ├── ApiError                            an error answer of the API (HTTP status or body)
    │   │   ├── RateLimitError      (Transient) 429 for the current minute: wait for the next window
    │   │   ├── DailyLimitError     (Terminal)  429 for the day: stop ingesting until tomorrow
    │   │   ├── AuthError           (Terminal)  401: the API key is wrong or missing
    │   │   ├── RequestError        (Terminal)  400/403/404/414: this request can never succeed
    │   │   └── ServerError         (Transient) 5xx
    │   ├── TransportError          (Transient) timeout, connection error, non-JSON or cut body
    │   └── UnreachableError        (Terminal)  the API's host cannot be connected to at all
    ├── StorageError                            raw zone / object store
    │   └── ImmutableError          (Terminal)  an attempt to overwrite a raw-zone object
    ├── MetadataError                           metadata database
    │   └── LockTimeoutError        (Terminal)  another run holds the project lock
    ├── CatalogError                            Data Catalog: Iceberg and external tables
    │   └── NoSuchTableError        (Terminal)  the table named is not in the catalog -> exit 2
    ├── TransformError                          the transform stage
    │   └── ModelError              (Terminal)  a SQL model is wrong (header, SQL, keys) -> exit 2
    ├── QueryError              (Config)    Athena-style: SYNTAX_ERROR: line 1:8: ... -> exit 2
    │   └── TableNotFoundError      (NoSuchTable) TABLE_NOT_FOUND
    ├── QueryCancelledError                     CANCELLED, e.g. the workgroup's bytes cutoff
    ├── QualityError                            data quality (DQDL rulesets and their evaluation)
    │   └── DqdlParseError          (Config)    a ruleset does not parse (line, column) -> exit 2
    └── StageError                              a stage failed; wraps the cause once with context

``exit_code`` is what the CLI exits with: 2 for bad input or configuration, 1 otherwise.

Example:
    >>> try:
    ...     raise RateLimitError("out of credits for the minute", code=429)
    ... except TransientError as exc:
    ...     print(type(exc).__name__, exc.code)
    RateLimitError 429
"""

from __future__ import annotations

from typing import Any


class DataflowError(Exception):
    """Root of every error Dataflow raises on purpose."""

    exit_code: int = 1


class TransientError(DataflowError):
    """Mixin: the same operation may succeed if tried again later."""


class TerminalError(DataflowError):
    """Mixin: trying again cannot help; report and stop (this request or the run)."""


class ConfigError(TerminalError):
    """Bad configuration or input. The message names the source, key path, value and the fix."""

    exit_code = 2


# --- sources -------------------------------------------------------------------------------------


class SourceError(DataflowError):
    """Base of errors talking to a data source."""


class ApiError(SourceError):
    """An error answer of the API, detected from the HTTP status or the body.

    Attributes:
        code: the error code (body ``code`` when present, else the HTTP status).
        http_status: the HTTP status the server sent (may be 200 for legacy error bodies).
        endpoint: the endpoint path, e.g. ``time_series``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int,
        http_status: int | None = None,
        endpoint: str | None = None,
        payload: Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status if http_status is not None else code
        self.endpoint = endpoint
        self.payload = payload


class RateLimitError(ApiError, TransientError):
    """429 for the current minute: wait for the next credit window and retry."""


class DailyLimitError(ApiError, TerminalError):
    """429 for the day: no more requests can succeed until the daily budget resets."""


class AuthError(ApiError, TerminalError):
    """401: the API key is invalid or missing. Stops the run."""

    exit_code = 2


class RequestError(ApiError, TerminalError):
    """400/403/404/414: this request is wrong for the API and will never succeed as sent."""


class ServerError(ApiError, TransientError):
    """5xx from the API or a gateway."""


class TransportError(SourceError, TransientError):
    """A timeout, a connection error, or a body that is not the JSON it should be."""


class UnreachableError(SourceError, TerminalError):
    """No connection to the API's host could be opened (refused, DNS, TLS, connect timeout).

    Raised once a host's circuit breaker is open: the remaining requests fail at once, unsent
    and without spending credits. The message names the cause and the setting to check.
    """


# --- storage and metadata ------------------------------------------------------------------------


class StorageError(DataflowError):
    """Base of raw-zone and object-store errors."""


class ImmutableError(StorageError, TerminalError):
    """An attempt to overwrite or delete an object in the immutable raw zone."""


class MetadataError(DataflowError):
    """Base of metadata-database errors."""


class LockTimeoutError(MetadataError, TerminalError):
    """Another run holds the project lock for longer than the configured timeout."""


class CatalogError(DataflowError):
    """Base of Data Catalog errors (Iceberg tables, external tables, the crawler)."""


class NoSuchTableError(CatalogError, TerminalError):
    """The table named is not in the catalog."""

    exit_code = 2


class TransformError(DataflowError):
    """Base of transform-stage errors."""


class ModelError(TransformError, TerminalError):
    """A SQL model is wrong: its header, its SQL, or its key columns. Fix the model file."""

    exit_code = 2


class QualityError(DataflowError):
    """Base of data-quality errors."""


class DqdlParseError(QualityError, ConfigError):
    """A DQDL document that does not parse: Glue's "Parsing Error" with where it happened.

    Attributes:
        reason: the message alone, as Glue words it, e.g. ``Rule Type: Foo is not valid``.
        line: 1-based line of the offending text.
        column: 1-based column of the offending text.
        text: the offending text (a token, or the start of the rule).

    Example:
        >>> err = DqdlParseError("Rule Type: Foo is not valid", line=2, column=5, text="Foo")
        >>> str(err)
        'Parsing Error: Rule Type: Foo is not valid (line 2, column 5, at "Foo")'
    """

    def __init__(self, reason: str, *, line: int, column: int, text: str) -> None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        shown = shown.replace("\n", "\\n")
        super().__init__(f'Parsing Error: {reason} (line {line}, column {column}, at "{shown}")')
        self.reason = reason
        self.line = line
        self.column = column
        self.text = text


class QueryError(ConfigError):
    """A query Athena would fail as a user error: bad SQL, unknown names, a refused statement.

    Attributes:
        error_type: the Athena/Trino error name, e.g. ``SYNTAX_ERROR``.
        reason: the message without name and position.
        line: 1-based line in the query text.
        column: 1-based column in the query text.
    """

    def __init__(self, error_type: str, reason: str, *, line: int = 1, column: int = 1) -> None:
        reason = " ".join(reason.split())  # one line, whatever DuckDB or sqlglot said
        super().__init__(f"{error_type}: line {line}:{column}: {reason}")
        self.error_type = error_type
        self.reason = reason
        self.line = line
        self.column = column


class TableNotFoundError(QueryError, NoSuchTableError):
    """``TABLE_NOT_FOUND``: the query names a table the catalog does not have."""

    def __init__(self, database: str, name: str, *, line: int = 1, column: int = 1) -> None:
        super().__init__(
            "TABLE_NOT_FOUND",
            f"Table 'awsdatacatalog.{database}.{name}' does not exist",
            line=line,
            column=column,
        )
        self.database = database
        self.table = name


class QueryCancelledError(DataflowError):
    """The query was cancelled before it ran (Athena's state CANCELLED), e.g. over the cutoff.

    Attributes:
        query_id: the execution that was cancelled.
        reason: Athena's ``StateChangeReason``, e.g. ``Bytes scanned limit was exceeded``.
    """

    def __init__(self, query_id: str, reason: str, detail: str = "") -> None:
        super().__init__(
            f"query {query_id} CANCELLED: {reason}" + (f" ({detail})" if detail else "")
        )
        self.query_id = query_id
        self.reason = reason


# --- pipeline ------------------------------------------------------------------------------------


class StageError(DataflowError):
    """A stage failed. Wraps the cause once, with the stage name and run id."""

    def __init__(self, message: str, *, stage: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.run_id = run_id


def is_transient(exc: BaseException) -> bool:
    """True when the retry policy may try the failed operation again."""
    return isinstance(exc, TransientError)


__all__ = [
    "ApiError",
    "AuthError",
    "CatalogError",
    "ConfigError",
    "DailyLimitError",
    "DataflowError",
    "DqdlParseError",
    "ImmutableError",
    "LockTimeoutError",
    "MetadataError",
    "ModelError",
    "NoSuchTableError",
    "QualityError",
    "QueryCancelledError",
    "QueryError",
    "RateLimitError",
    "RequestError",
    "ServerError",
    "SourceError",
    "StageError",
    "StorageError",
    "TableNotFoundError",
    "TerminalError",
    "TransformError",
    "TransientError",
    "TransportError",
    "UnreachableError",
    "is_transient",
]
