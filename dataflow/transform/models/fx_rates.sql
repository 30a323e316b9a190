-- target: fx_rates
-- sources: exchange_rate, currency_conversion
-- key: kind, symbol, ts
-- partition: month(ts)
-- description: Exchange rates (/exchange_rate) and conversions (/currency_conversion); ts from the answer's Unix timestamp.
--
-- Why month(ts): rates are read per pair over a period; month pruning with few files.
-- kind tells the two endpoints apart (amount is NULL for exchange_rate).
WITH src AS (
    SELECT *, CAST(record AS JSON) AS r FROM raw
)
SELECT
    CAST(endpoint AS VARCHAR) AS kind,
    CAST(symbol AS VARCHAR) AS symbol,
    try(to_timestamp(TRY_CAST(r ->> 'timestamp' AS BIGINT))) AS ts,
    TRY_CAST(r ->> 'rate' AS DOUBLE) AS rate,
    TRY_CAST(r ->> 'amount' AS DOUBLE) AS amount,
    CAST(split_part(symbol, '/', 1) AS VARCHAR) AS currency_base,
    CAST(NULLIF(split_part(symbol, '/', 2), '') AS VARCHAR) AS currency_quote,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN try(to_timestamp(TRY_CAST(r ->> 'timestamp' AS BIGINT))) IS NULL THEN 'timestamp is not a Unix time: ' || left(COALESCE(r ->> 'timestamp', 'null'), 80) END,
        CASE WHEN TRY_CAST(r ->> 'rate' AS DOUBLE) IS NULL THEN 'rate is not a number: ' || COALESCE(r ->> 'rate', 'null') END,
        CASE WHEN r ->> 'amount' IS NOT NULL AND TRY_CAST(r ->> 'amount' AS DOUBLE) IS NULL THEN 'amount is not a number: ' || (r ->> 'amount') END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
