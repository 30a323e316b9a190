-- target: earnings
-- sources: earnings
-- key: symbol, date
-- partition: none
-- description: Quarterly earnings (/earnings): EPS estimate and actual per symbol and report date.
--
-- Why unpartitioned: a few rows per symbol and quarter; read by symbol.
WITH src AS (SELECT *, CAST(record AS JSON) AS r FROM raw)
SELECT
    CAST(symbol AS VARCHAR) AS symbol,
    TRY_CAST(r ->> 'date' AS DATE) AS date,
    CAST(NULLIF(r ->> 'time', '') AS VARCHAR) AS time,
    TRY_CAST(r ->> 'eps_estimate' AS DOUBLE) AS eps_estimate,
    TRY_CAST(r ->> 'eps_actual' AS DOUBLE) AS eps_actual,
    TRY_CAST(r ->> 'difference' AS DOUBLE) AS difference,
    TRY_CAST(r ->> 'surprise_prc' AS DOUBLE) AS surprise_prc,
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol' END,
        CASE WHEN TRY_CAST(r ->> 'date' AS DATE) IS NULL THEN 'date is not a date: ' || COALESCE(r ->> 'date', 'null') END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
