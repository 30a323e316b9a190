-- target: prices
-- sources: price
-- key: symbol, ts
-- partition: month(ts)
-- description: Latest-price snapshots (/price); the API gives no time, so ts is when it was received.
--
-- Why month(ts): a few rows per symbol and run, read by time range.
WITH src AS (
    SELECT *, CAST(record AS JSON) ->> 'price' AS s_price FROM raw
)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    _received_at AS ts,
    TRY_CAST(s_price AS DOUBLE) AS price,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN s_price IS NULL THEN 'no price' END,
        CASE WHEN s_price IS NOT NULL AND TRY_CAST(s_price AS DOUBLE) IS NULL THEN 'price is not a number: ' || s_price END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
