-- target: indicators
-- sources: rsi, macd, sma, ema, bbands, wma, atr, stoch, adx, cci, willr
-- key: indicator, parameters, symbol, interval, ts
-- partition: indicator, interval, month(ts)
-- description: Technical indicator values; values maps each output (rsi, macd_signal, upper_band …) to a number.
--
-- Why this partition spec: a query reads one indicator at one interval over a time range
-- ("RSI 14 on daily bars this quarter"); identity(indicator, interval) + month(ts) prunes to
-- exactly that. parameters is meta.indicator without its name, as JSON text (e.g.
-- {"series_type":"close","time_period":14}), so one indicator with different settings keeps
-- separate rows. Timestamps follow the time_series rules.
WITH src AS (
    SELECT *, CAST(record AS JSON) AS r, CAST(meta AS JSON) AS m, CAST(params AS JSON) AS p
    FROM raw
),
v AS (
    SELECT
        *,
        r ->> 'datetime' AS s_datetime,
        TRY_CAST(r ->> 'datetime' AS TIMESTAMP) AS local_ts,
        CASE
            WHEN length(r ->> 'datetime') IN (10, 19) THEN NULL
            WHEN regexp_matches(r ->> 'datetime', '([zZ]|[+-][0-9]{2}(:?[0-9]{2})?|\s(UTC|GMT))$')
                THEN TRY_CAST(r ->> 'datetime' AS TIMESTAMPTZ)
        END AS zoned_ts,
        list_filter(json_keys(r), lambda k: k <> 'datetime') AS outputs
    FROM src
)
SELECT
    CAST(endpoint AS VARCHAR) AS indicator,
    CAST(m -> 'indicator' ->> 'name' AS VARCHAR) AS indicator_name,
    CAST(COALESCE(json_merge_patch(m -> 'indicator', '{"name": null}'), '{}') AS VARCHAR) AS parameters,
    CAST(symbol AS VARCHAR) AS symbol,
    CAST(COALESCE(m ->> 'interval', p ->> 'interval') AS VARCHAR) AS interval,
    CASE
        WHEN length(s_datetime) = 10 THEN timezone('UTC', local_ts)
        WHEN zoned_ts IS NOT NULL THEN zoned_ts
        ELSE timezone(_tz, local_ts)
    END AS ts,
    map_from_entries(list_transform(outputs, lambda k: struct_pack(
        key := k, value := TRY_CAST(json_extract_string(r, '$."' || k || '"') AS DOUBLE)
    ))) AS "values",
    NULLIF(concat_ws('; ',
        CASE WHEN symbol IS NULL THEN 'no symbol in the answer or request' END,
        CASE WHEN COALESCE(m ->> 'interval', p ->> 'interval') IS NULL THEN 'no interval' END,
        CASE WHEN local_ts IS NULL AND zoned_ts IS NULL THEN 'datetime is not a date-time: ' || left(COALESCE(s_datetime, 'null'), 80) END,
        CASE WHEN _tz IS NULL THEN 'unknown time zone in the request or meta.exchange_timezone' END,
        CASE WHEN len(list_filter(outputs, lambda k:
                json_extract_string(r, '$."' || k || '"') IS NOT NULL
                AND TRY_CAST(json_extract_string(r, '$."' || k || '"') AS DOUBLE) IS NULL)) > 0
            THEN 'not a number: ' || array_to_string(list_filter(outputs, lambda k:
                json_extract_string(r, '$."' || k || '"') IS NOT NULL
                AND TRY_CAST(json_extract_string(r, '$."' || k || '"') AS DOUBLE) IS NULL), ', ')
        END
    ), '') AS _error,
    _raw_key, _raw_line, _record_path, _run_id, _received_at
FROM v
