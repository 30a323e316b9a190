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
-- Timestamps (docs/transform-rules.md):
-- * Dates without a time (1day/1week/1month bars) are trading dates, not instants: they map to
--   00:00 UTC of that date whatever zone the request used, so one bar keeps one key.
-- * A datetime that states its offset (`…Z`, `…+05:00`) is that instant; _tz is not applied.
-- * Other intraday datetimes are localised in _tz (the request's or exchange's zone) and
--   converted to UTC. A local time the daylight-saving jump skips is quarantined. A local time
--   that occurs twice (the hour the clocks go back) is read as its later instant, and
--   _fold_ts holds its earlier one: when one payload holds that local time twice, the
--   transform gives the copy that comes first in time (order=desc: listed last) the earlier
--   instant, so no bar of the repeated hour is lost.
-- * Prices must be finite numbers and volume a whole number a BIGINT holds, else the row is
--   quarantined with the reason (NaN, Infinity, 1e99 and 1e23 never stop the batch).
-- The record and meta fields are declared above, so raw gives them parsed once, typed
-- (raw.rec, raw.meta_rec), rather than as JSON text parsed again here: this model runs over
-- millions of rows. The zone arithmetic only runs for rows that need it (_tz other than UTC).
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
        TRY_CAST(rec.datetime AS TIMESTAMP) AS local_ts,
        CASE
            WHEN length(rec.datetime) IN (10, 19) THEN NULL
            WHEN regexp_matches(rec.datetime, '([zZ]|[+-][0-9]{2}(:?[0-9]{2})?|\s(UTC|GMT))$')
                THEN TRY_CAST(rec.datetime AS TIMESTAMPTZ)
        END AS zoned_ts
    FROM raw
),
w AS (
    SELECT
        *,
        length(s_datetime) <> 10 AND zoned_ts IS NULL AND _tz <> 'UTC' AS in_zone
    FROM v
),
x AS (
    SELECT
        *,
        CASE WHEN in_zone THEN timezone(_tz, local_ts - INTERVAL 3 HOUR) + INTERVAL 3 HOUR END AS e_ts,
        CASE WHEN in_zone THEN timezone(_tz, local_ts + INTERVAL 3 HOUR) - INTERVAL 3 HOUR END AS l_ts
    FROM w
),
y AS (
    SELECT
        *,
        CASE WHEN in_zone THEN COALESCE(timezone(_tz, e_ts) = local_ts, false) END AS e_ok,
        CASE WHEN in_zone THEN COALESCE(timezone(_tz, l_ts) = local_ts, false) END AS l_ok,
        TRY_CAST(s_open AS DOUBLE) AS n_open,
        TRY_CAST(s_high AS DOUBLE) AS n_high,
        TRY_CAST(s_low AS DOUBLE) AS n_low,
        TRY_CAST(s_close AS DOUBLE) AS n_close,
        TRY_CAST(round(TRY_CAST(s_volume AS DOUBLE)) AS BIGINT) AS n_volume
    FROM x
),
z AS (
    SELECT
        *,
        CASE
            WHEN length(s_datetime) = 10 THEN timezone('UTC', local_ts)
            WHEN zoned_ts IS NOT NULL THEN zoned_ts
            WHEN NOT in_zone THEN timezone('UTC', local_ts)
            WHEN l_ok THEN l_ts
            WHEN e_ok THEN e_ts
        END AS u_ts
    FROM y
)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    CAST(s_interval AS VARCHAR) AS interval,
    u_ts AS ts,
    n_open AS open,
    n_high AS high,
    n_low AS low,
    n_close AS close,
    n_volume AS volume,
    CAST(NULLIF(meta_rec.exchange, '') AS VARCHAR) AS exchange,
    CAST(NULLIF(meta_rec.mic_code, '') AS VARCHAR) AS mic_code,
    CAST(NULLIF(meta_rec.currency, '') AS VARCHAR) AS currency,
    CAST(NULLIF(meta_rec.type, '') AS VARCHAR) AS instrument_type,
    CAST(NULLIF(meta_rec.currency_base, '') AS VARCHAR) AS currency_base,
    CAST(NULLIF(meta_rec.currency_quote, '') AS VARCHAR) AS currency_quote,
    CAST(NULLIF(meta_rec.exchange_timezone, '') AS VARCHAR) AS exchange_timezone,
    CASE WHEN e_ok AND l_ok AND e_ts <> l_ts THEN e_ts END AS _fold_ts,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN s_interval IS NULL THEN 'no interval' END,
        CASE WHEN local_ts IS NULL AND zoned_ts IS NULL THEN 'datetime is not a date-time: ' || left(COALESCE(s_datetime, 'null'), 80) END,
        CASE WHEN _tz IS NULL THEN 'unknown time zone in the request or meta.exchange_timezone' END,
        CASE WHEN in_zone AND NOT e_ok AND NOT l_ok THEN 'datetime ' || s_datetime || ' does not exist in ' || _tz || ' (skipped by the daylight-saving change)' END,
        CASE WHEN year(u_ts) NOT BETWEEN 1800 AND 2300 THEN 'datetime out of range (years 1800-2300): ' || left(s_datetime, 80) END,
        CASE WHEN s_open IS NOT NULL AND n_open IS NULL THEN 'open is not a number: ' || left(s_open, 80)
            WHEN NOT isfinite(n_open) THEN 'open is not a finite number: ' || left(s_open, 80) END,
        CASE WHEN s_high IS NOT NULL AND n_high IS NULL THEN 'high is not a number: ' || left(s_high, 80)
            WHEN NOT isfinite(n_high) THEN 'high is not a finite number: ' || left(s_high, 80) END,
        CASE WHEN s_low IS NOT NULL AND n_low IS NULL THEN 'low is not a number: ' || left(s_low, 80)
            WHEN NOT isfinite(n_low) THEN 'low is not a finite number: ' || left(s_low, 80) END,
        CASE WHEN s_close IS NOT NULL AND n_close IS NULL THEN 'close is not a number: ' || left(s_close, 80)
            WHEN NOT isfinite(n_close) THEN 'close is not a finite number: ' || left(s_close, 80) END,
        CASE WHEN s_volume IS NOT NULL AND n_volume IS NULL THEN 'volume is not a whole number within BIGINT: ' || left(s_volume, 80) END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM z
