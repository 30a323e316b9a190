-- target: eod
-- sources: eod
-- key: symbol, date
-- partition: year(date)
-- description: End-of-day closing prices (/eod), one row per symbol and trading date.
--
-- Why year(date): one row per symbol and day is small; yearly files stay reasonably sized and
-- still prune "this year" / date-range queries.
WITH src AS (
    SELECT *, CAST(record AS JSON) AS r FROM raw
)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    TRY_CAST(r ->> 'datetime' AS DATE) AS date,
    TRY_CAST(r ->> 'close' AS DOUBLE) AS close,
    CAST(NULLIF(r ->> 'exchange', '') AS VARCHAR) AS exchange,
    CAST(NULLIF(r ->> 'mic_code', '') AS VARCHAR) AS mic_code,
    CAST(NULLIF(r ->> 'currency', '') AS VARCHAR) AS currency,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN TRY_CAST(r ->> 'datetime' AS DATE) IS NULL THEN 'datetime is not a date: ' || COALESCE(r ->> 'datetime', 'null') END,
        CASE WHEN r ->> 'close' IS NOT NULL AND TRY_CAST(r ->> 'close' AS DOUBLE) IS NULL THEN 'close is not a number: ' || (r ->> 'close') END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
