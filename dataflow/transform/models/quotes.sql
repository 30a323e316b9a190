-- target: quotes
-- sources: quote
-- key: symbol, ts
-- partition: month(ts)
-- description: Quote snapshots (/quote); ts is the quote's timestamp (UTC), else its trading date.
--
-- Why month(ts): quotes are a few rows per symbol and run; users ask "latest quote" or "quotes
-- over a period", which month pruning serves without creating one tiny file per day.
-- 2021 payloads lack mic_code, timestamp and is_market_open: those columns are then NULL and ts
-- falls back to 00:00 UTC of the trading date.
WITH src AS (
    SELECT *, CAST(record AS JSON) AS r FROM raw
),
v AS (
    SELECT
        *,
        r ->> 'datetime' AS s_datetime,
        r ->> 'timestamp' AS s_timestamp,
        r ->> 'open' AS s_open, r ->> 'high' AS s_high, r ->> 'low' AS s_low,
        r ->> 'close' AS s_close, r ->> 'volume' AS s_volume,
        r ->> 'previous_close' AS s_previous_close, r ->> 'change' AS s_change,
        r ->> 'percent_change' AS s_percent_change, r ->> 'average_volume' AS s_average_volume,
        TRY_CAST(r ->> 'datetime' AS TIMESTAMP) AS local_ts
    FROM src
)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    COALESCE(
        to_timestamp(TRY_CAST(s_timestamp AS BIGINT)),
        CASE WHEN length(s_datetime) = 10 THEN timezone('UTC', local_ts) ELSE timezone(_tz, local_ts) END
    ) AS ts,
    TRY_CAST(s_datetime AS DATE) AS trade_date,
    CAST(r ->> 'name' AS VARCHAR) AS name,
    CAST(NULLIF(r ->> 'exchange', '') AS VARCHAR) AS exchange,
    CAST(NULLIF(r ->> 'mic_code', '') AS VARCHAR) AS mic_code,
    CAST(NULLIF(r ->> 'currency', '') AS VARCHAR) AS currency,
    TRY_CAST(s_open AS DOUBLE) AS open,
    TRY_CAST(s_high AS DOUBLE) AS high,
    TRY_CAST(s_low AS DOUBLE) AS low,
    TRY_CAST(s_close AS DOUBLE) AS close,
    CAST(round(TRY_CAST(s_volume AS DOUBLE)) AS BIGINT) AS volume,
    TRY_CAST(s_previous_close AS DOUBLE) AS previous_close,
    TRY_CAST(s_change AS DOUBLE) AS change,
    TRY_CAST(s_percent_change AS DOUBLE) AS percent_change,
    CAST(round(TRY_CAST(s_average_volume AS DOUBLE)) AS BIGINT) AS average_volume,
    TRY_CAST(r ->> 'is_market_open' AS BOOLEAN) AS is_market_open,
    TRY_CAST(r -> 'fifty_two_week' ->> 'low' AS DOUBLE) AS fifty_two_week_low,
    TRY_CAST(r -> 'fifty_two_week' ->> 'high' AS DOUBLE) AS fifty_two_week_high,
    to_timestamp(TRY_CAST(r ->> 'last_quote_at' AS BIGINT)) AS last_quote_at,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN TRY_CAST(s_timestamp AS BIGINT) IS NULL AND local_ts IS NULL
            THEN 'neither timestamp nor datetime is a time: ' || COALESCE(s_datetime, 'null') END,
        CASE WHEN s_open IS NOT NULL AND TRY_CAST(s_open AS DOUBLE) IS NULL THEN 'open is not a number: ' || s_open END,
        CASE WHEN s_high IS NOT NULL AND TRY_CAST(s_high AS DOUBLE) IS NULL THEN 'high is not a number: ' || s_high END,
        CASE WHEN s_low IS NOT NULL AND TRY_CAST(s_low AS DOUBLE) IS NULL THEN 'low is not a number: ' || s_low END,
        CASE WHEN s_close IS NOT NULL AND TRY_CAST(s_close AS DOUBLE) IS NULL THEN 'close is not a number: ' || s_close END,
        CASE WHEN s_volume IS NOT NULL AND TRY_CAST(s_volume AS DOUBLE) IS NULL THEN 'volume is not a number: ' || s_volume END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM v
