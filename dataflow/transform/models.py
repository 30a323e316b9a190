"""SQL models: discovery, header parsing and dependency order.

A model is one SQL file (DuckDB dialect) whose leading ``--`` comment lines declare it::

    -- target: time_series                  table written (default: the file name)
    -- sources: time_series                 raw endpoints read, comma-separated
    -- key: symbol, interval, ts            upsert key columns
    -- partition: interval, month(ts)       Iceberg partition spec (or "none")
    -- depends_on: stocks                   models that must run first (optional)
    -- record: datetime, open, close        record fields read typed as rec.<field> (optional)
    -- meta: interval, exchange             meta fields read typed as meta_rec.<field> (optional)
    -- description: OHLCV bars              one line for the catalog (optional)
    -- enabled: true                        false skips the model (optional)
    SELECT … FROM raw

The SELECT reads the relation ``raw`` (one row per record of one batch's envelopes, with the
record, ``meta`` and ``params`` as JSON text; a view the engine builds, see
:mod:`dataflow.transform.flatten`) and must return the lineage columns ``_raw_key``,
``_raw_line``, ``_record_path``, ``_run_id``, ``_received_at``, plus ``_error``: NULL for a good
row, else the reason the row goes to quarantine.

A model that declares ``-- record:`` reads its records parsed once, as the STRUCT ``rec`` of
those fields (text, as ``record ->> 'field'`` gives them), and ``raw`` then has no ``record``
column; ``-- meta:`` adds ``meta_rec`` the same way (``meta`` stays). A hot model should:
parsing each record's JSON text again in the model costs about a third of its run.

Built-in models ship in ``dataflow/transform/models/``; a project's ``models/`` folder overrides
one by using the same file name, or adds new ones.

Example:
    >>> m = parse_model("demo", "-- sources: price\\n-- key: symbol\\nSELECT 1", origin="x.sql")
    >>> m.target, m.sources, m.key
    ('demo', ('price',), ('symbol',))
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dataflow.errors import ModelError

LINEAGE_COLUMNS = ("_raw_key", "_raw_line", "_record_path", "_run_id", "_received_at")
"""Every clean row says which raw file and line (and record in it) it came from, the ingest
run, and when the response was received."""
ERROR_COLUMN = "_error"
_HEADER_KEY = re.compile(r"[a-z_]+")
HEADER_KEYS = frozenset(
    {"target", "sources", "key", "partition", "depends_on", "description", "enabled"}
    | {"record", "meta"}
)


@dataclass(frozen=True)
class Model:
    """One SQL model.

    Attributes:
        name: the file name without ``.sql``.
        target: the Iceberg table written (in the configured namespace).
        sources: raw-zone endpoints read.
        key: upsert key columns.
        partition: the partition spec as text (see ``parse_partition`` in dataflow.catalog.iceberg).
        depends_on: models that run before this one.
        description: one line for the catalog.
        sql: the SELECT (header included; comments are valid SQL).
        origin: the file it came from (``builtin:…`` for packaged models).
        enabled: false skips the model.
        record_fields: record fields ``raw.rec`` holds (empty: ``raw.record`` is JSON text).
        meta_fields: meta fields ``raw.meta_rec`` holds (empty: no ``meta_rec``).
    """

    name: str
    target: str
    sources: tuple[str, ...]
    key: tuple[str, ...]
    partition: str | None
    depends_on: tuple[str, ...]
    description: str
    sql: str
    origin: str
    enabled: bool = True
    record_fields: tuple[str, ...] = ()
    meta_fields: tuple[str, ...] = ()


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_model(name: str, text: str, *, origin: str) -> Model:
    """Parse a model's header.

    Raises:
        ModelError: an unknown header key, or ``sources``/``key`` missing.

    Example:
        >>> try:
        ...     parse_model("x", "-- sourcs: a\\nSELECT 1", origin="models/x.sql")
        ... except ModelError as exc:
        ...     print(str(exc)[:41])
        models/x.sql: unknown header key 'sourcs'
    """
    header: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        body = stripped[2:].strip()
        if ":" not in body:
            continue  # a plain comment
        key, _, value = body.partition(":")
        key = key.strip().lower()
        if not _HEADER_KEY.fullmatch(key):
            continue  # prose or JSON that happens to contain a colon
        if key not in HEADER_KEYS:
            raise ModelError(
                f"{origin}: unknown header key {key!r} — use one of "
                f"{', '.join(sorted(HEADER_KEYS))}"
            )
        header[key] = value.strip()
    for required in ("sources", "key"):
        if not header.get(required):
            raise ModelError(f"{origin}: the header needs '-- {required}: …' before the SELECT")
    partition = header.get("partition") or None
    if partition is not None and partition.lower() == "none":
        partition = None
    return Model(
        name=name,
        target=header.get("target") or name,
        sources=_split(header["sources"]),
        key=_split(header["key"]),
        partition=partition,
        depends_on=_split(header.get("depends_on", "")),
        description=header.get("description", ""),
        sql=text,
        origin=origin,
        enabled=header.get("enabled", "true").lower() not in {"false", "no", "0"},
        record_fields=_split(header.get("record", "")),
        meta_fields=_split(header.get("meta", "")),
    )


def builtin_models() -> dict[str, Model]:
    """The models that ship with Dataflow, by name."""
    found: dict[str, Model] = {}
    folder = resources.files("dataflow.transform") / "models"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            name = entry.name[: -len(".sql")]
            found[name] = parse_model(
                name, entry.read_text(encoding="utf-8"), origin=f"builtin:{entry.name}"
            )
    return found


def discover_models(project_dir: Path | None = None) -> dict[str, Model]:
    """Built-in models, overridden or extended by ``<project>/models/*.sql``.

    Example:
        >>> sorted(discover_models())[:3]
        ['cryptocurrencies', 'dividends', 'earnings']
    """
    models = builtin_models()
    folder = project_dir / "models" if project_dir is not None else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("*.sql")):
            models[path.stem] = parse_model(
                path.stem, path.read_text(encoding="utf-8"), origin=str(path)
            )
    targets: dict[str, str] = {}
    for model in models.values():
        if model.enabled and model.target in targets:
            raise ModelError(
                f"{model.origin}: table {model.target!r} is also written by "
                f"{targets[model.target]} — give one model another target or disable it"
            )
        if model.enabled:
            targets[model.target] = model.origin
    return models


def order_models(models: Iterable[Model]) -> list[Model]:
    """Models in dependency order (ties by name).

    Raises:
        ModelError: a dependency names no model, or the dependencies form a cycle.

    Example:
        >>> a = parse_model("a", "-- sources: x\\n-- key: k\\n-- depends_on: b", origin="a")
        >>> b = parse_model("b", "-- sources: x\\n-- key: k", origin="b")
        >>> [m.name for m in order_models([a, b])]
        ['b', 'a']
    """
    by_name = {model.name: model for model in models}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for model in sorted(by_name.values(), key=lambda m: m.name):
        for dep in model.depends_on:
            if dep not in by_name:
                raise ModelError(f"{model.origin}: depends_on names no model {dep!r}")
        sorter.add(model.name, *model.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ModelError(f"model dependencies form a cycle: {cycle}") from None
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(ready)
        sorter.done(*ready)
    return [by_name[name] for name in ordered]


def select_models(models: dict[str, Model], tables: Sequence[str] | None) -> list[Model]:
    """The enabled models to run (all, or those writing ``tables``), in dependency order.

    Raises:
        ModelError: a requested table is written by no model (with "did you mean").
    """
    enabled = [m for m in models.values() if m.enabled]
    if tables:
        import difflib

        by_target = {m.target: m for m in enabled}
        chosen = []
        for table in tables:
            if table not in by_target:
                close = difflib.get_close_matches(table, by_target, n=2)
                hint = (
                    f"did you mean {' or '.join(close)}?" if close else "see `dataflow transform`"
                )
                raise ModelError(f"--tables: no model writes {table!r} — {hint}")
            chosen.append(by_target[table])
        names = {m.name for m in chosen}
        return [m for m in order_models(enabled) if m.name in names]
    return order_models(enabled)


__all__ = [
    "ERROR_COLUMN",
    "LINEAGE_COLUMNS",
    "Model",
    "builtin_models",
    "discover_models",
    "order_models",
    "parse_model",
    "select_models",
]
