-- target: quotes
-- sources: quote
-- key: symbol, ts
-- partition: month(ts)
-- description: Quote snapshots (/quote); ts is the quote's timestamp (UTC), else its trading date.
--
-- Why month(ts): quotes are a few rows per symbol and run; users ask "latest quote" or "quotes
-- over a period", which month pruning serves without creating one tiny file per day.
-- 2021 payloads lack mic_code, timestamp and is_market_open: those columns are then NULL and ts
-- falls back to 00:00 UTC of the trading date. A datetime stating its offset is that instant.
-- A value that cannot be cast (volume 1e23, NaN; a Unix time out of range) is quarantined.
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
        TRY_CAST(r ->> 'datetime' AS TIMESTAMP) AS local_ts,
        CASE
            WHEN length(r ->> 'datetime') IN (10, 19) THEN NULL
            WHEN regexp_matches(r ->> 'datetime', '([zZ]|[+-][0-9]{2}(:?[0-9]{2})?|\s(UTC|GMT))$')
                THEN TRY_CAST(r ->> 'datetime' AS TIMESTAMPTZ)
        END AS zoned_ts,
        try(to_timestamp(TRY_CAST(r ->> 'timestamp' AS BIGINT))) AS unix_ts
    FROM src
)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    COALESCE(
        unix_ts,
        zoned_ts,
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
    TRY_CAST(round(TRY_CAST(s_volume AS DOUBLE)) AS BIGINT) AS volume,
    TRY_CAST(s_previous_close AS DOUBLE) AS previous_close,
    TRY_CAST(s_change AS DOUBLE) AS change,
    TRY_CAST(s_percent_change AS DOUBLE) AS percent_change,
    TRY_CAST(round(TRY_CAST(s_average_volume AS DOUBLE)) AS BIGINT) AS average_volume,
    TRY_CAST(r ->> 'is_market_open' AS BOOLEAN) AS is_market_open,
    TRY_CAST(r -> 'fifty_two_week' ->> 'low' AS DOUBLE) AS fifty_two_week_low,
    TRY_CAST(r -> 'fifty_two_week' ->> 'high' AS DOUBLE) AS fifty_two_week_high,
    try(to_timestamp(TRY_CAST(r ->> 'last_quote_at' AS BIGINT))) AS last_quote_at,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN unix_ts IS NULL AND local_ts IS NULL AND zoned_ts IS NULL
            THEN 'neither timestamp nor datetime is a time: ' || left(COALESCE(s_datetime, 'null'), 80) END,
        CASE WHEN s_open IS NOT NULL AND TRY_CAST(s_open AS DOUBLE) IS NULL THEN 'open is not a number: ' || s_open END,
        CASE WHEN s_high IS NOT NULL AND TRY_CAST(s_high AS DOUBLE) IS NULL THEN 'high is not a number: ' || s_high END,
        CASE WHEN s_low IS NOT NULL AND TRY_CAST(s_low AS DOUBLE) IS NULL THEN 'low is not a number: ' || s_low END,
        CASE WHEN s_close IS NOT NULL AND TRY_CAST(s_close AS DOUBLE) IS NULL THEN 'close is not a number: ' || s_close END,
        CASE WHEN s_volume IS NOT NULL AND TRY_CAST(s_volume AS DOUBLE) IS NULL THEN 'volume is not a number: ' || left(s_volume, 80)
            WHEN s_volume IS NOT NULL AND TRY_CAST(round(TRY_CAST(s_volume AS DOUBLE)) AS BIGINT) IS NULL
            THEN 'volume is not a whole number within BIGINT: ' || left(s_volume, 80) END,
        CASE WHEN s_average_volume IS NOT NULL AND TRY_CAST(round(TRY_CAST(s_average_volume AS DOUBLE)) AS BIGINT) IS NULL
            THEN 'average_volume is not a whole number within BIGINT: ' || left(s_average_volume, 80) END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM v
