-- target: time_series
-- sources: time_series
-- key: symbol, interval, ts
-- partition: interval, year(ts)
-- record: datetime, open, high, low, close, volume
-- meta: interval, exchange, mic_code, currency, type, currency_base, currency_quote, exchange_timezone
-- description: OHLCV bars per symbol and interval; ts is the bar's open time in UTC.
--
-- Why this partition spec: every query on bars picks one interval (mixing 1min and 1day bars
-- is meaningless) and a time range ("the last 30 days of 1h bars"), so identity(interval)
-- prunes to one interval and year(ts) plus the files' ts bounds to the time range: within a
-- partition the engine sorts the rows by ts (the key's time column) and cuts them into files
-- of one time range each, the newest 2,000 rows in a file of their own and the rest in files
-- of at most 50,000 (table properties dataflow.write.newest-file-rows / max-file-rows). So a
-- range query still reads few files, and an upsert of the newest bars (a bar still open when
-- fetched) rewrites only the small newest file, not a year. Year rather than month: decades
-- of daily bars would otherwise scatter into ~250 small month files per load. A table created
-- with the earlier `interval, month(ts)` keeps its spec (rows are written by a table's own
-- spec). See docs/architecture.md §6.
--
-- Dates without a time (1day/1week/1month bars) are trading dates, not instants: they map to
-- 00:00 UTC of that date whatever zone the request used, so one bar keeps one key. Intraday
-- datetimes are localised in _tz (the request's or exchange's zone) and converted to UTC.
-- The record and meta fields are declared above, so raw gives them parsed once, typed
-- (raw.rec, raw.meta_rec), rather than as JSON text parsed again here: this model runs over
-- millions of rows.
WITH v AS (
    SELECT
        *,
        rec.datetime AS s_datetime,
        rec.open AS s_open,
        rec.high AS s_high,
        rec.low AS s_low,
        rec.close AS s_close,
        rec.volume AS s_volume,
        COALESCE(meta_rec.interval, params ->> 'interval') AS s_interval,
        TRY_CAST(rec.datetime AS TIMESTAMP) AS local_ts
    FROM raw
)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    CAST(s_interval AS VARCHAR) AS interval,
    CASE
        WHEN length(s_datetime) = 10 THEN timezone('UTC', local_ts)
        ELSE timezone(_tz, local_ts)
    END AS ts,
    TRY_CAST(s_open AS DOUBLE) AS open,
    TRY_CAST(s_high AS DOUBLE) AS high,
    TRY_CAST(s_low AS DOUBLE) AS low,
    TRY_CAST(s_close AS DOUBLE) AS close,
    CAST(round(TRY_CAST(s_volume AS DOUBLE)) AS BIGINT) AS volume,
    CAST(NULLIF(meta_rec.exchange, '') AS VARCHAR) AS exchange,
    CAST(NULLIF(meta_rec.mic_code, '') AS VARCHAR) AS mic_code,
    CAST(NULLIF(meta_rec.currency, '') AS VARCHAR) AS currency,
    CAST(NULLIF(meta_rec.type, '') AS VARCHAR) AS instrument_type,
    CAST(NULLIF(meta_rec.currency_base, '') AS VARCHAR) AS currency_base,
    CAST(NULLIF(meta_rec.currency_quote, '') AS VARCHAR) AS currency_quote,
    CAST(NULLIF(meta_rec.exchange_timezone, '') AS VARCHAR) AS exchange_timezone,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN s_interval IS NULL THEN 'no interval' END,
        CASE WHEN local_ts IS NULL THEN 'datetime is not a date-time: ' || COALESCE(s_datetime, 'null') END,
        CASE WHEN _tz IS NULL THEN 'unknown time zone in the request or meta.exchange_timezone' END,
        CASE WHEN s_open IS NOT NULL AND TRY_CAST(s_open AS DOUBLE) IS NULL THEN 'open is not a number: ' || s_open END,
        CASE WHEN s_high IS NOT NULL AND TRY_CAST(s_high AS DOUBLE) IS NULL THEN 'high is not a number: ' || s_high END,
        CASE WHEN s_low IS NOT NULL AND TRY_CAST(s_low AS DOUBLE) IS NULL THEN 'low is not a number: ' || s_low END,
        CASE WHEN s_close IS NOT NULL AND TRY_CAST(s_close AS DOUBLE) IS NULL THEN 'close is not a number: ' || s_close END,
        CASE WHEN s_volume IS NOT NULL AND TRY_CAST(s_volume AS DOUBLE) IS NULL THEN 'volume is not a number: ' || s_volume END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM v
