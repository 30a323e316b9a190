-- target: time_series
-- sources: time_series
-- key: symbol, interval, ts
-- partition: interval, month(ts)
-- description: OHLCV bars per symbol and interval; ts is the bar's open time in UTC.
--
-- Why this partition spec: every query on bars picks one interval (mixing 1min and 1day bars
-- is meaningless) and a time range ("the last 30 days of 1h bars"), so identity(interval) and
-- month(ts) prune to the few files such a query needs. Month rather than day keeps daily bars
-- from scattering into one-row files; rather than year keeps 1min partitions small.
--
-- Dates without a time (1day/1week/1month bars) are trading dates, not instants: they map to
-- 00:00 UTC of that date whatever zone the request used, so one bar keeps one key. Intraday
-- datetimes are localised in _tz (the request's or exchange's zone) and converted to UTC.
-- Each record and meta is parsed once (json_extract_string with a list of paths) rather than
-- once per field, as this model runs over millions of rows.
WITH src AS (
    SELECT
        *,
        json_extract_string(record, ['$.datetime', '$.open', '$.high', '$.low', '$.close', '$.volume']) AS f,
        json_extract_string(meta, [
            '$.interval', '$.exchange', '$.mic_code', '$.currency', '$.type', '$.currency_base',
            '$.currency_quote', '$.exchange_timezone'
        ]) AS mf
    FROM raw
),
v AS (
    SELECT
        *,
        f[1] AS s_datetime,
        f[2] AS s_open,
        f[3] AS s_high,
        f[4] AS s_low,
        f[5] AS s_close,
        f[6] AS s_volume,
        COALESCE(mf[1], params ->> 'interval') AS s_interval,
        TRY_CAST(f[1] AS TIMESTAMP) AS local_ts
    FROM src
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
    CAST(NULLIF(mf[2], '') AS VARCHAR) AS exchange,
    CAST(NULLIF(mf[3], '') AS VARCHAR) AS mic_code,
    CAST(NULLIF(mf[4], '') AS VARCHAR) AS currency,
    CAST(NULLIF(mf[5], '') AS VARCHAR) AS instrument_type,
    CAST(NULLIF(mf[6], '') AS VARCHAR) AS currency_base,
    CAST(NULLIF(mf[7], '') AS VARCHAR) AS currency_quote,
    CAST(NULLIF(mf[8], '') AS VARCHAR) AS exchange_timezone,
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
