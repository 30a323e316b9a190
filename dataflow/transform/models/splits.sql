-- target: splits
-- sources: splits
-- key: symbol, date
-- partition: none
-- description: Stock splits (/splits): ratio and factors per symbol and date.
--
-- Why unpartitioned: a handful of rows per symbol; read by symbol.
WITH src AS (SELECT *, CAST(record AS JSON) AS r FROM raw)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    TRY_CAST(r ->> 'date' AS DATE) AS date,
    CAST(NULLIF(r ->> 'description', '') AS VARCHAR) AS description,
    TRY_CAST(r ->> 'ratio' AS DOUBLE) AS ratio,
    TRY_CAST(r ->> 'from_factor' AS DOUBLE) AS from_factor,
    TRY_CAST(r ->> 'to_factor' AS DOUBLE) AS to_factor,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol' END,
        CASE WHEN TRY_CAST(r ->> 'date' AS DATE) IS NULL THEN 'date is not a date: ' || COALESCE(r ->> 'date', 'null') END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
