-- target: dividends
-- sources: dividends
-- key: symbol, ex_date
-- partition: none
-- description: Dividends (/dividends): amount per symbol and ex-date.
--
-- Why unpartitioned: a few rows per symbol and year; read by symbol.
WITH src AS (SELECT *, CAST(record AS JSON) AS r FROM raw)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    TRY_CAST(r ->> 'ex_date' AS DATE) AS ex_date,
    TRY_CAST(r ->> 'amount' AS DOUBLE) AS amount,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol' END,
        CASE WHEN TRY_CAST(r ->> 'ex_date' AS DATE) IS NULL THEN 'ex_date is not a date: ' || COALESCE(r ->> 'ex_date', 'null') END,
        CASE WHEN r ->> 'amount' IS NOT NULL AND TRY_CAST(r ->> 'amount' AS DOUBLE) IS NULL THEN 'amount is not a number: ' || (r ->> 'amount') END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
