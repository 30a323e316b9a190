"""The contract dialect (DuckDB) as Spark SQL: sqlglot, plus our fixes where its output is wrong.

sqlglot translates most of a model. What it gets wrong for Spark 3.5, fixed here on the tree:

===============================  ===============================  ==============================
DuckDB (the contract)            sqlglot's Spark output           what runs here
===============================  ===============================  ==============================
``CAST(record AS JSON)``         ``TO_JSON(record)`` (quotes it)  ``record`` (JSON text already)
``timezone(zone, local)``        ``TIMEZONE(zone, ts)`` (none)    ``to_utc_timestamp(ts, zone)``
``timezone(zone, instant)``      ``TIMEZONE(zone, ts)`` (none)    ``from_utc_timestamp(ts, zone)``
``TRY_CAST(s AS TIMESTAMP)``     ``TIMESTAMP_NTZ``                ``TIMESTAMP_NTZ`` as ``TIMESTAMP``
``to_timestamp(epoch)``          ``CAST(FROM_UNIXTIME(…))``       ``timestamp_seconds(epoch)``
===============================  ===============================  ==============================

Also fixed: ``json_merge_patch(m -> 'k', '{"name": null}')`` (a member dropped from the JSON text),
a JSON path concatenated per row, ``len(list)`` (docs/engines.md lists them all).

The relation ``raw`` (:func:`dataflow.transform.raw_view.raw_select_sql`) is DuckDB-specific
(``* EXCLUDE``, ``json_transform``, ``unnest`` + ``generate_subscripts``); :func:`to_spark`
recognises its text and puts :func:`raw_select_sql` (the same rows, in Spark SQL: ``from_json``
+ ``posexplode``) in its place.

Constructs with no Spark equivalent giving the same values are refused with one line naming the
model and the construct (:data:`UNSUPPORTED`), before Spark runs anything.

Example:
    >>> to_spark("SELECT timezone(_tz, local_ts) AS ts FROM raw")
    'SELECT TO_UTC_TIMESTAMP(local_ts, _tz) AS ts FROM raw'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dataflow.errors import ModelError

UNSUPPORTED = {
    "json_merge_patch": "json_merge_patch(...) other than dropping one member (Spark has no "
    "JSON patch that keeps value types)",
    "json_transform": "json_transform(...) (use the model's '-- record:' header instead)",
}
"""DuckDB functions refused on Spark: name -> what the message says."""

_DROP_MEMBER = re.compile(r"json_merge_patch\((\w+) -> '(\w+)', '\{\"(\w+)\": null\}'\)")
"""``json_merge_patch(m -> 'k', '{"name": null}')``: the object at ``k`` without ``name``."""
_DYNAMIC_PATH = re.compile(r"json_extract_string\((\w+), '\$\.\"' \|\| (\w+) \|\| '\"'\)")
"""``json_extract_string(r, '$."' || k || '"')``: a member named at run time."""

_TARGET = re.compile(r"^\s*--\s*target:\s*(\S+)", re.MULTILINE)
_SHAPE = re.compile(r"json_transform\((\w+|CAST\(.*?\)), '(.*?)'\)(?= AS _recs| AS meta_rec)", re.S)


def model_name(text: str) -> str:
    """The model a SQL text comes from (its ``-- target:`` header), or ``SQL`` for ad-hoc text."""
    found = _TARGET.search(text)
    return f"model {found.group(1)}" if found else "SQL"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def raw_select_sql(
    source: str,
    *,
    record_fields: Sequence[str] = (),
    meta_fields: Sequence[str] = (),
) -> str:
    """The rows of ``raw`` over the bodies in ``source``, in Spark SQL.

    Same columns and values as the DuckDB view: ``from_json`` reads a record (or a field) that
    is not a JSON string as its JSON text, as DuckDB's ``->>`` and ``json_transform`` do.

    Example:
        >>> "posexplode" in raw_select_sql("_df_bodies")
        True
    """
    # A member spelled "$.payload."AAPL".values" (multi-symbol answers) is $['AAPL'] in Spark.
    path = "regexp_replace(_path, '\\\\.\"([^\"]*)\"', '[\\'$1\\']')"
    lists = f"COALESCE(_inline, get_json_object(_line, {path}))"
    meta = ""
    if meta_fields:
        shape = ", ".join(f"{_q(f)}: STRING" for f in meta_fields)
        meta = f", from_json(meta, 'STRUCT<{shape}>') AS meta_rec"
    if record_fields:
        # "symbol" is read whatever the model declares, to apply the same rule as DuckDB.
        fields = [*dict.fromkeys([*record_fields, "symbol"])]
        shape = ", ".join(f"{_q(f)}: STRING" for f in fields)
        element = f"from_json({lists}, 'ARRAY<STRUCT<{shape}>>')"
        own = "_r.symbol"
        own_symbol = f"CASE WHEN {own} <> '' AND NOT contains({own}, ',') THEN {own} END"
        packed = ", ".join(f"'{f}', _r.{_q(f)}" for f in record_fields)
        record = f"named_struct({packed}) AS rec"
    else:
        element = f"from_json({lists}, 'ARRAY<STRING>')"
        own = "get_json_object(_r, '$.symbol')"
        own_symbol = (
            f"CASE WHEN _r RLIKE '\"symbol\"\\\\s*:\\\\s*\"' AND {own} <> '' "
            f"AND NOT contains({own}, ',') THEN {own} END"
        )
        record = "_r AS record"
    columns = (
        "_raw_key, _raw_line, _prefix, _list, _run_id, _request_id, _received_at, endpoint, "
        "_answer_symbol, _fallback_symbol, params, meta, _tz"
    )
    return f"""
WITH b AS (
    SELECT {columns}, {element} AS _recs{meta}
    FROM {source}
),
u AS (
    SELECT b.*, _p._i, _p._r FROM b LATERAL VIEW posexplode(_recs) _p AS _i, _r
)
SELECT
    _raw_key,
    _raw_line,
    _prefix || CASE WHEN _list IS NULL THEN '' ELSE _list || '[' || CAST(_i AS STRING) || ']' END
        AS _record_path,
    _run_id,
    _request_id,
    _received_at,
    endpoint,
    COALESCE(_answer_symbol, {own_symbol}, _fallback_symbol) AS symbol,
    params,
    meta,
    {record},
    _tz{", meta_rec" if meta_fields else ""}
FROM u
"""


def _swap_raw_views(text: str) -> str:
    """Put the Spark form of each DuckDB ``raw`` SELECT found in ``text`` in its place."""
    from dataflow.transform import raw_view

    if "json_extract(" not in text and "json_transform(" not in text:
        return text
    for source in re.findall(r"FROM (\w+)\n\),\nu AS", text):
        record: list[str] = []
        meta: list[str] = []
        for subject, shape in _SHAPE.findall(text):
            fields = json.loads(shape.replace("''", "'"))
            if subject == "meta":
                meta = list(fields)
            else:
                record = list(fields[0])  # the declared fields, and "symbol" (always read)
        # A model may declare "symbol" itself: try the fields as read, then without it.
        for record_fields in (record, [f for f in record if f != "symbol"]):
            duck = raw_view.raw_select_sql(source, record_fields=record_fields, meta_fields=meta)
            if duck in text:
                spark = raw_select_sql(source, record_fields=record_fields, meta_fields=meta)
                text = text.replace(duck, spark)
                break
    return text


_ZONED = (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ)


def _is_instant(
    node: exp.Expression, aliases: dict[str, list[exp.Expression]], seen: set[str]
) -> bool:
    """Whether DuckDB types ``node`` TIMESTAMPTZ (an instant), following the query's aliases."""
    if isinstance(node, (exp.Paren, exp.Try, exp.Alias)):
        return _is_instant(node.this, aliases, seen)
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return node.to.this in _ZONED
    if isinstance(node, exp.UnixToTime):
        return True
    if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone":
        # timezone(zone, local) is an instant; timezone(zone, instant) a local time.
        return len(node.expressions) == 2 and not _is_instant(node.expressions[1], aliases, seen)
    if isinstance(node, (exp.Add, exp.Sub)):
        return _is_instant(node.this, aliases, seen)
    if isinstance(node, (exp.Case, exp.Coalesce, exp.If)):
        branches = [
            *(case.args.get("true") for case in node.args.get("ifs") or []),
            node.args.get("default"),
            node.args.get("true"),
            node.args.get("false"),
            *(node.expressions if isinstance(node, exp.Coalesce) else []),
            node.this if isinstance(node, exp.Coalesce) else None,
        ]
        return any(b is not None and _is_instant(b, aliases, seen) for b in branches)
    if isinstance(node, exp.Column) and node.name not in seen:
        # A column names an alias of the relation it reads, not of its own SELECT.
        own = node.find_ancestor(exp.Select)
        defined = [d for d in aliases.get(node.name, []) if d.find_ancestor(exp.Select) is not own]
        return any(_is_instant(d, aliases, seen | {node.name}) for d in defined)
    return False


def _mark_local_times(tree: exp.Expr) -> None:
    """Rename each DuckDB ``timezone(zone, instant)`` (a local time) to ``_df_local_time``.

    DuckDB's ``timezone(zone, ts)`` goes both ways on the type of ``ts``: a TIMESTAMP is a
    local time in ``zone`` (the result: its instant, Spark's ``to_utc_timestamp``), a
    TIMESTAMPTZ an instant (the result: its local time there, ``from_utc_timestamp``). Spark's
    TIMESTAMP is both, so the type is read here from the query itself (casts, ``timezone``,
    ``to_timestamp``, arithmetic on them, and the columns they are aliased to).
    """
    aliases: dict[str, list[exp.Expression]] = {}
    for alias in tree.find_all(exp.Alias):
        aliases.setdefault(alias.alias, []).append(alias.this)
    calls = [
        node
        for node in tree.find_all(exp.Anonymous)
        if node.name.lower() == "timezone" and len(node.expressions) == 2
    ]
    local = [node for node in calls if _is_instant(node.expressions[1], aliases, set())]
    for node in local:
        node.set("this", "_df_local_time")


def _fix(node: exp.Expression, where: str) -> exp.Expression:
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name in UNSUPPORTED:
            raise ModelError(f"{where}: Spark cannot run {UNSUPPORTED[name]} — use engine: duckdb")
        if name == "_df_drop_member":
            # Spark writes the object back compactly, in its own order, as DuckDB does.
            value, member = node.expressions
            pattern = exp.Literal.string(f'"{member.name}":"(?:[^"\\\\]|\\\\.)*",?')
            dropped = exp.Anonymous(
                this="regexp_replace", expressions=[value, pattern, exp.Literal.string("")]
            )
            return exp.Anonymous(
                this="regexp_replace",
                expressions=[dropped, exp.Literal.string(",}$"), exp.Literal.string("}")],
            )
        if name == "_df_member":
            record, key = node.expressions
            path = exp.Anonymous(
                this="concat",
                expressions=[exp.Literal.string("$['"), key, exp.Literal.string("']")],
            )
            return exp.Anonymous(this="get_json_object", expressions=[record, path])
        if name == "isfinite" and len(node.expressions) == 1:
            # DuckDB isfinite(x); NULL stays NULL, as there.
            value = node.expressions[0]
            infinite = exp.EQ(
                this=exp.Abs(this=value.copy()),
                expression=exp.cast(exp.Literal.string("Infinity"), "DOUBLE"),
            )
            isnan = exp.Anonymous(this="isnan", expressions=[value.copy()])
            return exp.Not(this=exp.Paren(this=exp.Or(this=isnan, expression=infinite)))
        if name == "timezone" and len(node.expressions) == 2:
            zone, value = node.expressions
            return exp.Anonymous(this="to_utc_timestamp", expressions=[value, zone])
        if name == "_df_local_time":
            zone, value = node.expressions
            return exp.Anonymous(this="from_utc_timestamp", expressions=[value, zone])
    if isinstance(node, (exp.Cast, exp.TryCast)):
        target = node.to
        if target.this == exp.DataType.Type.JSON:
            inner: exp.Expression = node.this
            return inner
        if target.this == exp.DataType.Type.TIMESTAMPNTZ and not node.args.get("_df_local"):
            # DuckDB's TIMESTAMP reads a text's wall time and ignores a stated offset, as
            # Spark's TIMESTAMP_NTZ does; as TIMESTAMP (the session in UTC) it is that time.
            node.set("_df_local", True)
            return exp.cast(node, exp.DataType.build("TIMESTAMP", dialect="spark"))
    if isinstance(node, exp.Try):
        # DuckDB's try(): Spark has none. A Unix time out of TIMESTAMP's range is NULL there.
        inner = node.this
        if isinstance(inner, exp.UnixToTime):
            seconds = inner.this
            in_range = exp.Between(
                this=seconds.copy(),
                low=exp.Literal.number(-62135596800),
                high=exp.Literal.number(253402300799),
            )
            return exp.Case(ifs=[exp.If(this=in_range, true=inner)])
        return inner
    if isinstance(node, exp.Length) and isinstance(node.this, exp.ArrayFilter):
        return exp.ArraySize(this=node.this)  # DuckDB len(list); Spark's length is for text
    if isinstance(node, exp.UnixToTime) and not node.args.get("scale"):
        return exp.Anonymous(this="timestamp_seconds", expressions=[node.this])
    if isinstance(node, exp.JSONPathKey) and "||" in str(node.this):
        raise ModelError(f"{where}: Spark cannot run a JSON path built at run time — use DuckDB")
    if isinstance(node, exp.Star) and node.args.get("except"):
        raise ModelError(f"{where}: Spark 3.5 cannot run SELECT * EXCLUDE (...) — list the columns")
    return node


def to_spark(text: str) -> str:
    """DuckDB SQL as Spark SQL (see the module docstring).

    Raises:
        ModelError: the text does not parse, or uses a construct Spark cannot run (named).
    """
    where = model_name(text)
    text = _swap_raw_views(text)
    # Rewritten before parsing: sqlglot reads "f(m -> 'k')" as a lambda, and cuts a JSON path
    # concatenated at run time into a literal key.
    text = _DROP_MEMBER.sub(r"_df_drop_member(json_extract(\1, '$.\2'), '\3')", text)
    text = _DYNAMIC_PATH.sub(r"_df_member(\1, \2)", text)
    # The Spark form of raw is already Spark SQL: keep it out of the DuckDB parser.
    pieces = re.split(r"(\nWITH b AS \(\n    SELECT _raw_key.*?\nFROM u\n)", text, flags=re.S)
    placeholders: dict[str, str] = {}
    for number in range(1, len(pieces), 2):
        key = f"_df_spark_raw_{number}"
        placeholders[key] = pieces[number].strip()
        pieces[number] = f"(SELECT * FROM {key})"
    try:
        trees = sqlglot.parse("".join(pieces), read="duckdb")
    except SqlglotError as exc:
        raise ModelError(f"{where}: SQL cannot be parsed as DuckDB SQL ({exc})") from None
    out: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        _mark_local_times(tree)
        fixed = tree.transform(lambda node: _fix(node, where))
        # Twice: a replaced node's own children are not visited by the first pass.
        sql = fixed.transform(lambda node: _fix(node, where)).sql(dialect="spark")
        for key, spark in placeholders.items():
            sql = sql.replace(f"SELECT * FROM {key}", spark)
        out.append(sql)
    return ";\n".join(out)


__all__ = ["UNSUPPORTED", "model_name", "raw_select_sql", "to_spark"]
