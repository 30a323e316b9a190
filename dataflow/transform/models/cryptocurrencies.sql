-- target: cryptocurrencies
-- sources: cryptocurrencies
-- key: symbol
-- partition: none
-- description: The cryptocurrency catalogue (/cryptocurrencies); latest answer wins.
--
-- Why unpartitioned: a small catalogue read whole.
WITH src AS (SELECT *, CAST(record AS JSON) AS r FROM raw)
SELECT
    CAST(r ->> 'symbol' AS VARCHAR) AS symbol,
    CAST(NULLIF(r ->> 'currency_base', '') AS VARCHAR) AS currency_base,
    CAST(NULLIF(r ->> 'currency_quote', '') AS VARCHAR) AS currency_quote,
    CAST(COALESCE(TRY_CAST(r -> 'available_exchanges' AS VARCHAR[]), []) AS VARCHAR[]) AS available_exchanges,
    CASE WHEN r ->> 'symbol' IS NULL THEN 'no symbol' END AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
