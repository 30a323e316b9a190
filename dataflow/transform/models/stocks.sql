-- target: stocks
-- sources: stocks
-- key: symbol, exchange
-- partition: none
-- description: The stock catalogue (/stocks): one row per symbol and exchange, latest answer wins.
--
-- Why unpartitioned: a catalogue is thousands of rows read whole or by symbol; partitions would
-- only split it into tiny files. Older answers lack mic_code/figi/isin: those columns are NULL.
WITH src AS (SELECT *, CAST(record AS JSON) AS r FROM raw)
SELECT
    CAST(r ->> 'symbol' AS VARCHAR) AS symbol,
    CAST(r ->> 'name' AS VARCHAR) AS name,
    CAST(NULLIF(r ->> 'currency', '') AS VARCHAR) AS currency,
    CAST(r ->> 'exchange' AS VARCHAR) AS exchange,
    CAST(NULLIF(r ->> 'mic_code', '') AS VARCHAR) AS mic_code,
    CAST(NULLIF(r ->> 'country', '') AS VARCHAR) AS country,
    CAST(NULLIF(r ->> 'type', '') AS VARCHAR) AS instrument_type,
    CAST(NULLIF(r ->> 'figi_code', '') AS VARCHAR) AS figi_code,
    CAST(NULLIF(r ->> 'cfi_code', '') AS VARCHAR) AS cfi_code,
    CAST(NULLIF(r ->> 'isin', '') AS VARCHAR) AS isin,
    CAST(NULLIF(r ->> 'cusip', '') AS VARCHAR) AS cusip,
    NULLIF(concat_ws('; ',
        CASE WHEN r ->> 'symbol' IS NULL THEN 'no symbol' END,
        CASE WHEN r ->> 'exchange' IS NULL THEN 'no exchange' END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
