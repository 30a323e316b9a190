"""The ingest stage: Twelve Data -> immutable raw zone, incrementally.

Every answer the API gives (errors and retried attempts included) lands verbatim as an envelope in
``raw/twelvedata/<endpoint>/ingest_date=…/<run_id>-<seq>.jsonl.gz``. A watermark per
(endpoint, symbol, interval) advances only once every envelope of its request is durable, so a
killed run loses nothing and the next run asks again for exactly what did not land.

With no API key, the built-in simulator is started on an ephemeral loopback port and ingested from
over real HTTP: the same code path as the real API.

Example:
    >>> from dataflow.pipeline import RunOptions, run_pipeline   # doctest: +SKIP
    >>> run_pipeline(settings, RunOptions(endpoints=["quote"])).status   # doctest: +SKIP
    'succeeded'
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataflow.crashpoints import crashpoint
from dataflow.errors import (
    ApiError,
    AuthError,
    DailyLimitError,
    DataflowError,
    RequestError,
    TransientError,
    TransportError,
    UnreachableError,
)
from dataflow.sources.twelvedata.plan import (
    SOURCE,
    PlanItem,
    format_api_datetime,
    parse_api_datetime,
    plan_requests,
)

if TYPE_CHECKING:
    from dataflow.contract import RunContext, StageResult
    from dataflow.metadata import WatermarkKey
    from dataflow.sources.twelvedata.client import Response, TwelveDataClient
    from dataflow.sources.twelvedata.spool import Spool
    from dataflow.storage import Manifest, RawFile, RawWriter

log = logging.getLogger("dataflow.sources.twelvedata.ingest")

NO_DATA = "No data is available on the specified dates"
_NON_STRICT = re.compile(rb"NaN|Infinity")


@dataclass
class EndpointStats:
    """Per-endpoint counters shown in the summary table and recorded as metrics."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    rows: int = 0
    credits: int = 0
    bytes: int = 0
    files: int = 0
    rate_limited: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain data for stage details and JSON output."""
        return dict(self.__dict__)


@dataclass
class Progress:
    """Live counters for a progress display."""

    planned: int = 0
    done: int = 0
    credits: int = 0
    rows: int = 0
    errors: int = 0
    budget: int | None = None


#: Failures kept in a stage's details for `dataflow runs show` (the count is always exact).
MAX_FAILURES_SHOWN = 200


@dataclass
class Failure:
    """One endpoint/symbol/interval that got no usable answer, and why.

    Attributes:
        endpoint: the endpoint asked.
        symbol: the symbol (``None`` for catalogue requests).
        interval: the bar interval (``None`` for snapshots).
        status: the API's error code (the body's ``code``, else the HTTP status); ``None`` when
            no answer came at all.
        error: what the API (or the network) said.
    """

    endpoint: str
    symbol: str | None
    interval: str | None
    status: int | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for stage details."""
        return dict(self.__dict__)

    def __str__(self) -> str:
        where = " ".join(p for p in (self.endpoint, self.symbol, self.interval) if p)
        return f"{where}: {self.error}"


@dataclass
class _Pending:
    request_ids: set[str]
    advances: dict[WatermarkKey, dt.datetime]


@dataclass
class IngestState:
    """Bookkeeping of one ingest: durable request ids, pending watermarks, stats, manifest."""

    run_id: str
    writer: RawWriter
    manifest: Manifest
    stats: dict[str, EndpointStats] = field(default_factory=lambda: defaultdict(EndpointStats))
    durable: set[str] = field(default_factory=set)
    pending: list[_Pending] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    spool: Spool | None = None
    """Every envelope is appended here before it is buffered (see :mod:`.spool`)."""
    unspooled: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    """Spool numbers of the envelopes buffered per endpoint, not yet in a raw file."""
    failures: list[Failure] = field(default_factory=list)
    answered: int = 0
    """Endpoint/symbol/interval combinations that got data or a documented "no data"."""
    flush_seconds: float = 5.0
    last_flush: float = field(default_factory=time.monotonic)


class IngestStage:
    """Pipeline stage ``ingest``."""

    name = "ingest"

    def __init__(self, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.on_progress = on_progress

    def run(self, ctx: RunContext) -> StageResult:
        """Plan, fetch and land; return counts for the run record."""
        settings = ctx.settings.sources.twelvedata
        with _api_base_url(settings.uses_simulator, settings.base_url) as base_url:
            return asyncio.run(self._ingest(ctx, base_url))

    async def _ingest(self, ctx: RunContext, base_url: str) -> StageResult:
        from dataflow.contract import StageResult
        from dataflow.metadata import WatermarkStore
        from dataflow.sources.twelvedata import spool
        from dataflow.sources.twelvedata.client import TwelveDataClient
        from dataflow.storage import Manifest, RawWriter, write_manifest

        settings = ctx.settings.sources.twelvedata
        opts = ctx.options
        marks = WatermarkStore(ctx.db)
        raw = ctx.settings.storage.raw
        spool_dir = ctx.settings.state_dir / "spool"
        recovered = spool.recover(
            spool_dir, current=ctx.run_id, store=ctx.store, source=SOURCE, marks=marks,
            max_lines=raw.file_max_lines, max_bytes=raw.file_max_bytes,
        )  # fmt: skip
        if opts.full_refresh:
            chosen: list[str | None] = [*opts.endpoints] if opts.endpoints else [None]
            for name in chosen:
                marks.reset(source=SOURCE, endpoint=name)
        known = {key: when for key, when, _ in marks.list(SOURCE)}
        today = dt.datetime.now(dt.UTC).date()
        plan = plan_requests(
            settings,
            watermarks=known,
            today=today,
            endpoints=opts.endpoints,
            symbols=opts.symbols,
            start=opts.start,
            end=opts.end,
        )
        writer = RawWriter(
            ctx.store,
            source=SOURCE,
            run_id=ctx.run_id,
            max_lines=raw.file_max_lines,
            max_bytes=raw.file_max_bytes,
        )
        manifest = Manifest(
            run_id=ctx.run_id,
            source=SOURCE,
            started_at=dt.datetime.now(dt.UTC),
            finished_at=None,
            status="running",
            requests=[],
            files=[],
        )
        state = IngestState(ctx.run_id, writer, manifest, flush_seconds=raw.flush_seconds)
        manifest.record_files(recovered)
        journal = spool.Spool.open(spool_dir, ctx.run_id)
        state.spool = journal
        per_minute, per_day = settings.effective_budget()
        state.progress.planned = len(plan)
        state.progress.budget = per_day
        log.info(
            "ingest: %d requests planned from %s (%s)",
            len(plan),
            "the built-in simulator" if settings.uses_simulator else "the Twelve Data API",
            f"{per_minute} credits/min" if per_minute else "no credit limit",
        )

        def on_response(response: Response) -> None:
            self._land(state, marks, response)

        client = TwelveDataClient.from_settings(
            settings, base_url=base_url, on_response=on_response
        )
        stop: str | None = None
        stop_error: DataflowError | None = None
        queue: asyncio.Queue[PlanItem] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)

        async def worker() -> None:
            nonlocal stop, stop_error
            while stop is None:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await self._fetch_item(client, state, marks, item)
                except DailyLimitError as exc:
                    stop, stop_error = "daily", exc
                    queue.put_nowait(item)  # not fetched: counted as skipped below
                except AuthError as exc:
                    stop, stop_error = "auth", exc
                except UnreachableError as exc:
                    if stop is None:
                        stop, stop_error = "unreachable", exc
                    queue.put_nowait(item)
                except DataflowError as exc:
                    state.stats[item.endpoint].errors += 1
                    state.progress.errors += 1
                    symbols: list[str | None] = [*item.symbols] or [None]
                    for symbol in symbols:
                        _fail(state, item.endpoint, symbol, item.interval, None, exc)
                    log.warning("%s %s failed: %s", item.endpoint, ",".join(item.symbols), exc)
                finally:
                    state.progress.done += 1
                    if self.on_progress:
                        self.on_progress(state.progress)

        started = time.perf_counter()
        async with client:
            workers = [asyncio.create_task(worker()) for _ in range(settings.max_concurrency)]
            await asyncio.gather(*workers)
            client_stats = client.stats()
        while not queue.empty():
            item = queue.get_nowait()
            state.stats[item.endpoint].skipped += 1
        self._flush(state, marks)
        manifest.finished_at = dt.datetime.now(dt.UTC)
        status = _status(state, stop)
        manifest.status = status
        crashpoint("ingest.before_final_manifest")
        write_manifest(ctx.store, manifest)
        # everything is in raw files and every watermark advanced: the journal has done its job
        journal.close(delete=not state.pending and not state.writer.pending)
        seconds = time.perf_counter() - started
        self._record_metrics(ctx, state, seconds)

        totals = EndpointStats()
        for stats in state.stats.values():
            for key, value in stats.as_dict().items():
                setattr(totals, key, getattr(totals, key) + value)
        details: dict[str, Any] = {
            "endpoints": {name: s.as_dict() for name, s in sorted(state.stats.items())},
            "files": len(writer.files),
            "client": client_stats,
            "source": "simulator" if settings.uses_simulator else "twelvedata",
            "seconds": round(seconds, 3),
            "failures": [f.as_dict() for f in state.failures[:MAX_FAILURES_SHOWN]],
            "failures_total": len(state.failures),
        }
        messages = []
        if stop == "auth" or (stop == "unreachable" and not state.answered):
            # nothing usable came back: the one line that says why is the stage's failure
            raise stop_error  # type: ignore[misc]
        if stop == "unreachable":
            messages.append(f"{stop_error}; {totals.skipped} request(s) not sent")
        if stop == "daily":
            messages.append(
                f"daily credit budget reached ({stop_error}); "
                f"{totals.skipped} request(s) left for the next run"
            )
            log.warning("ingest stopped for the day: %s", stop_error)
        if state.failures:
            messages.append(
                f"{len(state.failures)} endpoint/symbol request(s) got no usable answer "
                f"(first: {state.failures[0]}) — see `dataflow runs show {ctx.run_id}`"
            )
            log.warning(
                "%d endpoint/symbol request(s) failed (%d answered); first: %s",
                len(state.failures), state.answered, state.failures[0],
            )  # fmt: skip
        return StageResult(
            status=status,
            rows=totals.rows,
            bytes=totals.bytes,
            requests=totals.requests,
            errors=totals.errors,
            message="; ".join(messages) or None,
            details=details,
        )

    async def _fetch_item(
        self,
        client: TwelveDataClient,
        state: IngestState,
        marks: Any,
        item: PlanItem,
    ) -> None:
        from dataflow.sources.twelvedata.endpoints import EndpointKind

        params = dict(item.params)
        series = item.kind in (EndpointKind.SERIES, EndpointKind.INDICATOR)
        if series:
            params["interval"] = item.interval
            if item.start is not None:
                params["start_date"] = format_api_datetime(item.start, item.interval)
            if item.end is not None:
                params["end_date"] = format_api_datetime(item.end, item.interval)
            params.setdefault("outputsize", 5000)
        first = await client.fetch(item.endpoint, symbols=item.symbols, params=params)
        responses = [first]
        advances: dict[WatermarkKey, dt.datetime] = {}
        stats = state.stats[item.endpoint]
        if not item.symbols:
            if first.outcome.ok:
                advances[item.keys[0]] = dt.datetime.now(dt.UTC)
                stats.rows += _rows(first.outcome.payload)
                state.progress.rows += _rows(first.outcome.payload)
                state.answered += 1
            else:
                stats.errors += 1
                state.progress.errors += 1
                _fail(state, item.endpoint, None, item.interval, first.status_code,
                      first.outcome.error)  # fmt: skip
        results = dict(first.outcome.per_symbol)
        if len(item.symbols) > 1:
            # A symbol that failed transiently inside a batch whose other symbols landed is asked
            # again on its own, once; the client already retried the batch as a whole.
            for symbol in item.symbols:
                failed = results.get(symbol)
                if failed is not None and isinstance(failed.error, TransientError):
                    again = await client.fetch(item.endpoint, symbols=[symbol], params=params)
                    responses.append(again)
                    results[symbol] = again.outcome.per_symbol.get(symbol, failed)
        for symbol in item.symbols:
            result = results.get(symbol)
            if result is None or not result.ok:
                error = result.error if result is not None else first.outcome.error
                if series and isinstance(error, RequestError) and NO_DATA in str(error):
                    state.answered += 1
                    continue  # nothing new in the window: not an error
                stats.errors += 1
                state.progress.errors += 1
                _fail(state, item.endpoint, symbol, item.interval, None, error)
                log.debug("%s %s: %s", item.endpoint, symbol, error)
                continue
            state.answered += 1
            stats.rows += result.rows
            state.progress.rows += result.rows
            if not series:
                continue
            values = _values(result.payload)
            # One series shares one datetime format, so the text order is the time order.
            stamps = [v["datetime"] for v in values]
            newest = parse_api_datetime(max(stamps)) if stamps else None
            if len(values) >= int(params["outputsize"]) and values:
                oldest = parse_api_datetime(min(stamps))
                pages = await client.fetch_history(
                    item.endpoint,
                    symbol=symbol,
                    interval=str(item.interval),
                    start=item.start,
                    end=oldest,
                    params=item.params,
                )
                responses.extend(pages)
                complete = True
                for page in pages:
                    more = page.outcome.per_symbol.get(symbol)
                    if more is not None and more.ok:
                        stats.rows += more.rows
                        state.progress.rows += more.rows
                    else:
                        # a hole in the history: the watermark must not pass it
                        complete = False
                        stats.errors += 1
                        state.progress.errors += 1
                        _fail(state, item.endpoint, symbol, item.interval, page.status_code,
                              more.error if more is not None else page.outcome.error)  # fmt: skip
                if not complete:
                    continue
            if newest is not None:
                key = next(k for k in item.keys if k.symbol == symbol)
                advances[key] = newest
        if advances:
            pending = _Pending({r.request_id for r in responses}, advances)
            if state.spool is not None:
                state.spool.advance(state.run_id, advances)
            state.pending.append(pending)
            self._advance_durable(state, marks)

    def _land(self, state: IngestState, marks: Any, response: Response) -> None:
        """Store one answer of the API as an envelope (called for every attempt)."""
        from dataflow.storage import RequestRecord, make_envelope

        stats = state.stats[response.endpoint]
        stats.requests += 1
        stats.credits += response.credits
        state.progress.credits += response.credits
        if response.status_code == 429:
            stats.rate_limited += 1
        if response.outcome.ok:
            stats.ok += 1
        fields: dict[str, Any] = {
            "source": SOURCE,
            "endpoint": response.endpoint,
            "path": response.path,
            "params": response.params,
            "status_code": response.status_code,
            "headers": response.headers,
            "received_at": response.received_at,
            "run_id": state.run_id,
            "request_id": response.request_id,
            "symbols": response.symbols,
        }
        parsed = _parsed(response)
        envelope = make_envelope(body=response.body, **fields, **parsed)
        error = response.outcome.error
        state.manifest.requests.append(
            RequestRecord(
                request_id=response.request_id,
                endpoint=response.endpoint,
                path=response.path,
                params=dict(response.params),
                symbols=list(response.symbols),
                outcome="ok" if response.outcome.ok else "error",
                status_code=response.status_code,
                error=str(error) if error else None,
                credits=response.credits,
                attempts=response.attempts,
                file=None,
                rows=sum(r.rows for r in response.outcome.per_symbol.values()),
            )
        )
        if state.spool is not None:
            # on disk before it is buffered: a kill from here on loses nothing paid for
            kept = {
                **fields,
                "headers": envelope["headers"],  # only the headers an envelope keeps
                "received_at": response.received_at.isoformat(),
                "parsed": _decoded_as(parsed),
            }
            state.unspooled[response.endpoint].append(state.spool.response(kept, response.body))
        flushed = state.writer.add(envelope)
        if flushed is not None:
            self._after_flush(state, marks, [flushed])
        elif time.monotonic() - state.last_flush >= state.flush_seconds:
            self._flush(state, marks)

    def _flush(self, state: IngestState, marks: Any) -> None:
        files = state.writer.flush()
        if files:
            self._after_flush(state, marks, files)

    def _after_flush(self, state: IngestState, marks: Any, files: list[RawFile]) -> None:
        from dataflow.storage import write_manifest

        state.last_flush = time.monotonic()
        for raw in files:
            state.durable.update(raw.request_ids)
            if state.spool is not None:
                state.spool.durable(state.unspooled.pop(raw.endpoint, []))
            stats = state.stats[raw.endpoint]
            stats.files += 1
            stats.bytes += raw.bytes
        state.manifest.record_files(files)
        write_manifest(state.writer.store, state.manifest)
        crashpoint("ingest.after_manifest")
        self._advance_durable(state, marks)

    def _advance_durable(self, state: IngestState, marks: Any) -> None:
        ready = [p for p in state.pending if p.request_ids <= state.durable]
        if not ready:
            return
        merged: dict[WatermarkKey, dt.datetime] = {}
        for pending in ready:
            for key, when in pending.advances.items():
                merged[key] = max(when, merged.get(key, when))
        marks.advance(merged, run_id=state.run_id)
        crashpoint("ingest.after_watermark")
        state.pending = [p for p in state.pending if p not in ready]

    def _record_metrics(self, ctx: RunContext, state: IngestState, seconds: float) -> None:
        from dataflow.monitor.metrics import Datapoint

        now = dt.datetime.now(dt.UTC)
        points = []
        names = {
            "requests": ("Requests", "Count"),
            "errors": ("Errors", "Count"),
            "rows": ("RowsFetched", "Count"),
            "credits": ("CreditsUsed", "Count"),
            "bytes": ("BytesLanded", "Bytes"),
            "rate_limited": ("RateLimited", "Count"),
        }
        dims = {"pipeline": ctx.settings.name}
        for endpoint, stats in state.stats.items():
            for attr, (metric, unit) in names.items():
                points.append(
                    Datapoint(
                        "Dataflow/Ingest",
                        metric,
                        float(getattr(stats, attr)),
                        unit,
                        {**dims, "endpoint": endpoint},
                        now,
                        ctx.run_id,
                    )
                )
        # CloudWatch never rolls up across dimensions: a metric is also published with the
        # pipeline alone, so alarms such as "any 429" can watch the whole ingest.
        for attr, (metric, unit) in names.items():
            total = sum(getattr(stats, attr) for stats in state.stats.values())
            points.append(
                Datapoint("Dataflow/Ingest", metric, float(total), unit, dims, now, ctx.run_id)
            )
        ctx.metrics.record_many(points)
        ctx.metrics.record("Dataflow/Ingest", "IngestSeconds", seconds, "Seconds")


def _fail(
    state: IngestState,
    endpoint: str,
    symbol: str | None,
    interval: str | None,
    status: int | None,
    error: BaseException | None,
) -> None:
    """Record one endpoint/symbol/interval that got no usable answer.

    An API error's code is its status (a batch answers HTTP 200 with a 404 inside); the
    ``"<endpoint> <symbol>: "`` prefix of its message is dropped, the failure says where.
    """
    if isinstance(error, ApiError):
        status = error.code
    text = str(error) if error is not None else "no answer"
    for prefix in (f"{endpoint} {symbol}: ", f"{endpoint}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    state.failures.append(Failure(endpoint, symbol, interval, status, text))


def _status(state: IngestState, stop: str | None) -> str:
    """``succeeded`` only if every request got data or a documented "no data" answer.

    ``failed`` when nothing did, ``partial`` when some did and some did not (or the daily budget
    or an unreachable host left requests unsent).
    """
    if stop == "auth":
        return "failed"
    if not state.failures and stop is None:
        return "succeeded"
    return "partial" if state.answered else "failed"


def _parsed(response: Response) -> dict[str, Any]:
    """The body as the classifier decoded it, unless it was not strict JSON.

    Bodies that are not JSON, or use NaN/Infinity, are left to the raw zone's own strict parser,
    which stores them as text so the envelope stays valid JSON.
    """
    if isinstance(response.outcome.error, TransportError) or _NON_STRICT.search(response.body):
        return {}
    return {"parsed": response.outcome.payload}


def _decoded_as(parsed: dict[str, Any]) -> str | None:
    """How the classifier decoded a body, so a spooled answer rebuilds the same envelope."""
    if not parsed:
        return None  # the raw zone's own parser decides
    payload = parsed["parsed"]
    if payload is None:
        return "none"
    return "text" if isinstance(payload, str) else "json"


def _values(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict):
        values = payload.get("values")
        if isinstance(values, list):
            return [v for v in values if isinstance(v, dict) and "datetime" in v]
    return []


def _rows(payload: Any) -> int:
    if isinstance(payload, list):
        return len(payload)
    if isinstance(payload, dict):
        for key in ("values", "data"):
            if isinstance(payload.get(key), list):
                return len(payload[key])
        return 1
    return 0


@contextmanager
def _api_base_url(use_simulator: bool, base_url: str) -> Iterator[str]:
    """The API root to talk to: the real one, or a simulator started for this ingest."""
    if not use_simulator:
        yield base_url
        return
    from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer

    with SimulatorServer(SimulatorConfig()) as server:
        log.info("no API key configured: ingesting from the built-in simulator at %s", server.url)
        yield server.url


def summarize(stats: dict[str, dict[str, int]]) -> Counter[str]:
    """Totals over endpoints (for the CLI's last line)."""
    total: Counter[str] = Counter()
    for values in stats.values():
        total.update(values)
    return total
