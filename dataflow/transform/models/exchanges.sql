-- target: exchanges
-- sources: exchanges
-- key: code
-- partition: none
-- description: Exchanges (/exchanges) by MIC code, with their time zone; latest answer wins.
--
-- Why unpartitioned: a small catalogue read whole.
WITH src AS (SELECT *, CAST(record AS JSON) AS r FROM raw)
SELECT
    CAST(r ->> 'code' AS VARCHAR) AS code,
    CAST(r ->> 'name' AS VARCHAR) AS name,
    CAST(NULLIF(r ->> 'title', '') AS VARCHAR) AS title,
    CAST(NULLIF(r ->> 'country', '') AS VARCHAR) AS country,
    CAST(NULLIF(r ->> 'timezone', '') AS VARCHAR) AS timezone,
    CASE WHEN r ->> 'code' IS NULL THEN 'no code' END AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM src
