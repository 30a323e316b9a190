"""Dashboards as code: the YAML model of ``dashboards/*.yaml`` and where dashboards are found.

A dashboard has parameters (the controls on top of the page) and sheets; a sheet has visuals;
a visual is a SQL query plus the *field mappings* that say which output column goes where
(``x``, ``y``, ``series``, ``open`` / ``high`` / ``low`` / ``close`` / ``volume``, ``value``,
...). Parameters reach the SQL only as prepared-statement parameters (``$name``), never pasted
into its text: see :mod:`dataflow.dashboard.params`. Every model forbids unknown keys, so a
typo fails with its path (``sheets.overview.visuals.candles.olose: unknown key``).

Dashboards come from two folders: the built-in ones shipped in ``dataflow/dashboard/builtin``
(the Market dashboard) and the project's ``dashboards/*.yaml``; a project file with the name of
a built-in one replaces it. The name is the file stem.

Example:
    >>> board = parse_dashboard('''
    ... title: Prices
    ... sheets:
    ...   - name: main
    ...     visuals:
    ...       - {name: close, type: line, sql: "SELECT 1 AS x, 2 AS y", x: x, y: y}
    ... ''', name="prices")
    >>> [v.name for v in board.visuals()]
    ['close']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.config import Settings

BUILTIN_DIR = Path(__file__).parent / "builtin"
"""The dashboards shipped with Dataflow."""
PROJECT_FOLDER = "dashboards"
"""The project's dashboards folder (under the project directory)."""

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
DashboardName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
Dialect = Literal["duckdb", "athena", "trino"]
Control = Literal["dropdown", "multi-select", "date-range", "text"]
ValueType = Literal["string", "integer", "number", "date"]
Scalar = str | int | float
VISUAL_TYPES = ("line", "bar", "area", "candlestick", "scatter", "heatmap", "pie", "table", "kpi")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Model):
    """One choice of a dropdown: the value bound to the query and the label shown."""

    value: Scalar
    label: str | None = None


class Parameter(_Model):
    """A control on the dashboard, bound to the visuals' SQL as ``$name``.

    A ``date-range`` binds two parameters, ``$<name>_from`` and ``$<name>_to`` (dates); a
    ``multi-select`` binds a list (``symbol = ANY($symbols)``); the others bind one value of
    ``type``. Defaults may be relative dates: ``today``, ``-30d``, ``-12w``, ``-6m``, ``-1y``.
    """

    name: Identifier
    label: str | None = None
    control: Control = "dropdown"
    type: ValueType = "string"
    options: list[Scalar | Option] | None = None
    options_sql: str | None = None
    dialect: Dialect = "duckdb"
    default: Any = None

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.options is not None and self.options_sql is not None:
            raise ValueError("give either options or options_sql, not both")
        if self.control in ("dropdown", "multi-select"):
            if self.options is None and self.options_sql is None:
                raise ValueError(f"a {self.control} needs options or options_sql")
        elif self.options is not None or self.options_sql is not None:
            raise ValueError(f"a {self.control} control takes no options")
        if self.control == "date-range" and self.type != "date":
            object.__setattr__(self, "type", "date")  # the only type a date range has
        return self

    def bindings(self) -> list[str]:
        """The ``$names`` this parameter binds.

        Example:
            >>> Parameter(name="period", control="date-range").bindings()
            ['period_from', 'period_to']
        """
        if self.control == "date-range":
            return [f"{self.name}_from", f"{self.name}_to"]
        return [self.name]

    def static_options(self) -> list[Option] | None:
        """The static options as :class:`Option` (None when they come from ``options_sql``)."""
        if self.options is None:
            return None
        return [o if isinstance(o, Option) else Option(value=o) for o in self.options]


class VisualBase(_Model):
    """What every visual has: a name, a SQL query and where it sits on the grid."""

    name: Identifier
    title: str | None = None
    description: str | None = None
    sql: str = Field(min_length=1)
    dialect: Dialect = "duckdb"
    width: int = Field(6, ge=1, le=12, description="Columns of the 12-column grid.")
    height: int = Field(320, ge=80, le=2000, description="Pixels (charts).")
    max_rows: int = Field(10_000, ge=1, le=1_000_000)

    def fields(self) -> dict[str, str]:
        """The field mappings: role -> output column (lists as ``role[i]``)."""
        found: dict[str, str] = {}
        for role in _ROLES:
            value = getattr(self, role, None)
            if isinstance(value, str):
                found[role] = value
            elif isinstance(value, list):
                found.update({f"{role}[{i}]": item for i, item in enumerate(value)})
        return found


_ROLES: tuple[str, ...] = ("x", "y", "series", "open", "high", "low", "close", "volume", "lines")
_ROLES += ("size", "value", "label", "delta", "caption", "columns")


class LineVisual(VisualBase):
    """Lines of ``y`` (one column, or several) over ``x``, one line per ``series`` value."""

    type: Literal["line"]
    x: str
    y: str | list[str]
    series: str | None = None


class AreaVisual(LineVisual):
    """A line chart with filled (and, with ``stack``, stacked) areas."""

    type: Literal["area"]  # type: ignore[assignment]
    stack: bool = False


class BarVisual(LineVisual):
    """Bars of ``y`` per ``x``; ``horizontal`` swaps the axes."""

    type: Literal["bar"]  # type: ignore[assignment]
    stack: bool = False
    horizontal: bool = False


class CandlestickVisual(VisualBase):
    """OHLC candles over ``x``; ``volume`` as bars below; ``lines`` (e.g. moving averages)."""

    type: Literal["candlestick"]
    x: str
    open: str
    high: str
    low: str
    close: str
    volume: str | None = None
    lines: list[str] = Field(default_factory=list)


class ScatterVisual(VisualBase):
    """Points at (``x``, ``y``), coloured by ``series``, sized by ``size``."""

    type: Literal["scatter"]
    x: str
    y: str
    series: str | None = None
    size: str | None = None


class HeatmapVisual(VisualBase):
    """A grid of ``x`` by ``y`` cells coloured by ``value``."""

    type: Literal["heatmap"]
    x: str
    y: str
    value: str


class PieVisual(VisualBase):
    """Slices of ``value`` per ``label``."""

    type: Literal["pie"]
    label: str
    value: str


class TableVisual(VisualBase):
    """The rows as a table (``columns`` chooses and orders them; all by default)."""

    type: Literal["table"]
    columns: list[str] | None = None


class KpiVisual(VisualBase):
    """One number from the first row: ``value``, with ``delta`` (a change, shown with its sign
    and colour) and ``caption`` (a line of text) when given."""

    type: Literal["kpi"]
    value: str
    delta: str | None = None
    caption: str | None = None
    format: Literal["number", "percent", "text"] = "number"
    delta_format: Literal["number", "percent"] = "percent"


Visual = Annotated[
    LineVisual
    | AreaVisual
    | BarVisual
    | CandlestickVisual
    | ScatterVisual
    | HeatmapVisual
    | PieVisual
    | TableVisual
    | KpiVisual,
    Field(discriminator="type"),
]


class Sheet(_Model):
    """A titled group of visuals, laid out on a 12-column grid in order."""

    name: Identifier
    title: str | None = None
    visuals: list[Visual] = Field(min_length=1)


class Dashboard(_Model):
    """A dashboard: parameters and sheets of visuals (see the module docstring)."""

    name: DashboardName
    title: str
    description: str | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    sheets: list[Sheet] = Field(min_length=1)
    source: str = Field("", exclude=True, description="The file it was read from.")

    @model_validator(mode="after")
    def _unique(self) -> Dashboard:
        _no_duplicates("parameter", [b for p in self.parameters for b in p.bindings()])
        _no_duplicates("sheet", [s.name for s in self.sheets])
        _no_duplicates("visual", [v.name for v in self.visuals()])
        return self

    def visuals(self) -> list[VisualBase]:
        """Every visual of every sheet, in order."""
        return [visual for sheet in self.sheets for visual in sheet.visuals]

    def visual(self, name: str) -> VisualBase:
        """The visual called ``name``.

        Raises:
            ConfigError: there is none.
        """
        for visual in self.visuals():
            if visual.name == name:
                return visual
        known = ", ".join(v.name for v in self.visuals())
        raise ConfigError(f"dashboard {self.name!r} has no visual {name!r} (known: {known})")

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, or None."""
        return next((p for p in self.parameters if p.name == name), None)


def _no_duplicates(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{kind} name {name!r} is used twice: names must be unique")
        seen.add(name)


# --- loading -------------------------------------------------------------------------------------


def parse_dashboard(text: str, *, name: str, source: str = "<text>") -> Dashboard:
    """A dashboard from YAML text; ``name`` is the file stem.

    Raises:
        ConfigError: bad YAML or a schema problem, in one line naming the file and key path.

    Example:
        >>> parse_dashboard("title: x\\ncolour: red", name="x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        dataflow.errors.ConfigError: <text>: sheets: required; colour: unknown key ...
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where} — {_first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a dashboard is a YAML mapping (title, parameters, sheets)")
    given = data.get("name", name)
    if given != name:
        raise ConfigError(f"{source}: name {given!r} differs from the file name {name!r}")
    try:
        return Dashboard.model_validate({**data, "name": name, "source": source})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc, data)}") from exc


def load_file(path: Path) -> Dashboard:
    """The dashboard in ``path`` (its name is the file stem).

    Raises:
        ConfigError: unreadable file, bad YAML, or a schema problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({type(exc).__name__})") from exc
    return parse_dashboard(text, name=path.stem, source=str(path))


def dashboard_files(settings: Settings) -> dict[str, Path]:
    """Every dashboard file by name: the built-in ones, replaced by project files of that name.

    Example:
        >>> from dataflow.config import load_settings
        >>> sorted(dashboard_files(load_settings("/nonexistent-project", env={})))
        ['market']
    """
    found = {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.yaml"))}
    folder = settings.project_dir / PROJECT_FOLDER
    if folder.is_dir():
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            found[path.stem] = path
    return dict(sorted(found.items()))


def load_dashboard(settings: Settings, name: str) -> Dashboard:
    """The dashboard called ``name`` (a project file wins over a built-in one).

    Raises:
        ConfigError: no such dashboard (the message lists those there are), or a broken file.
    """
    files = dashboard_files(settings)
    if name not in files:
        known = ", ".join(files) or "none"
        raise ConfigError(
            f"no dashboard {name!r} (known: {known}) — add {PROJECT_FOLDER}/{name}.yaml"
        )
    return load_file(files[name])


def dashboard_listing(settings: Settings) -> list[dict[str, Any]]:
    """Name, title, description, origin and size of every dashboard, or its file's error.

    Example:
        >>> from dataflow.config import load_settings
        >>> [d["title"] for d in dashboard_listing(load_settings("/nonexistent-project", env={}))]
        ['Market']
    """
    listing: list[dict[str, Any]] = []
    for name, path in dashboard_files(settings).items():
        entry: dict[str, Any] = {
            "name": name,
            "origin": "built-in" if path.parent == BUILTIN_DIR else "project",
            "title": name,
            "description": None,
            "sheets": 0,
            "visuals": 0,
            "error": None,
        }
        try:
            board = load_file(path)
        except ConfigError as exc:
            entry["error"] = str(exc)
        else:
            entry.update(
                title=board.title,
                description=board.description,
                sheets=len(board.sheets),
                visuals=len(board.visuals()),
            )
        listing.append(entry)
    return listing


def describe_errors(exc: ValidationError, data: Any) -> str:
    """Pydantic's errors as ``path: problem`` in one line, list items named by their ``name``.

    Example:
        >>> data = {"name": "d", "title": "t", "sheets": [{"name": "s", "visuals": [
        ...     {"name": "v", "type": "kpi", "sql": "SELECT 1", "vaule": "x"}]}]}
        >>> try:
        ...     Dashboard.model_validate(data)
        ... except ValidationError as exc:
        ...     print(*describe_errors(exc, data).split("; "), sep="\\n")
        sheets.s.visuals.v.value: required
        sheets.s.visuals.v.vaule: unknown key (check the spelling)
    """
    problems: list[str] = []
    for error in exc.errors():
        path = _path(error.get("loc", ()), data)
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            problem = "unknown key (check the spelling)"
        elif kind == "missing":
            problem = "required"
        elif kind == "union_tag_invalid":
            problem = f"unknown visual type — use one of {', '.join(VISUAL_TYPES)}"
        elif kind == "union_tag_not_found":
            problem = f"type is required — one of {', '.join(VISUAL_TYPES)}"
        else:
            problem = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{path}: {problem}" if path else problem)
    return "; ".join(dict.fromkeys(problems))


def _path(loc: tuple[Any, ...], data: Any) -> str:
    """``sheets.0.visuals.2.line.x`` as ``sheets.main.visuals.candles.x`` (names, no tags)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            child = node[item] if isinstance(node, list) and item < len(node) else None
            name = child.get("name") if isinstance(child, dict) else None
            parts.append(str(name) if isinstance(name, str) and name else str(item))
            node = child
        elif isinstance(node, dict) and item in node:
            parts.append(str(item))
            node = node[item]
        elif item in VISUAL_TYPES or "[" in str(item) or "-" in str(item):
            continue  # a union's tag or member name, not a key of the file
        else:
            parts.append(str(item))
            node = None
    return ".".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "BUILTIN_DIR",
    "PROJECT_FOLDER",
    "VISUAL_TYPES",
    "AreaVisual",
    "BarVisual",
    "CandlestickVisual",
    "Dashboard",
    "HeatmapVisual",
    "KpiVisual",
    "LineVisual",
    "Option",
    "Parameter",
    "PieVisual",
    "ScatterVisual",
    "Sheet",
    "TableVisual",
    "Visual",
    "VisualBase",
    "dashboard_files",
    "dashboard_listing",
    "describe_errors",
    "load_dashboard",
    "load_file",
    "parse_dashboard",
]
