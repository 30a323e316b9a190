"""The file rules of DQDL — FileFreshness, FileSize, FileMatch, FileUniqueness — local and on S3.

A file rule checks the files of the dataset, not its rows. Its files are those at the path it
names (a file, or every file under a folder), else the files the dataset was read from: what
``--data PATH`` or a catalog table's view reads (Glue infers them from the data frame the same
way). A dataset not read from files is an ERROR saying so.

Paths are local (``data/prices/``, ``file:///...``) or S3 URIs (``s3://bucket/prefix/``,
``s3a://``) read with the project's ``storage.s3`` settings (:mod:`dataflow.quality.fileaccess`).

Semantics (Glue docs ``dqdl-rule-types-File*``; ``shared/reference/aws-semantics.md`` §1.7):

* ``FileFreshness ["path"] <date condition> [with threshold ...]``: each file's last
  modification time against ``now()``, ``(now() - 24 hours)``, a date (its midnight) or a time
  of day (today's), in UTC unless ``with timeZone = "Europe/Paris"``; the share of complying
  files must be 1.0, or meet the threshold. Metrics ``Dataset.*.FileFreshness.Compliance``,
  ``Dataset.*.FileCount``.
* ``FileSize ["path"] <size condition> [with threshold ...]``: sizes, ``B KB MB GB TB`` in
  powers of 1024. Metrics ``Dataset.*.FileSize.Compliance``, ``Dataset.*.FileCount``,
  ``Dataset.*.MaximumFileSize``, ``Dataset.*.MinimumFileSize`` (bytes).
* ``FileMatch ["path"] in ["<hex>", ...] [with hashAlgorithm = "MD5"]``: every file's checksum
  meets the string condition (``=``, ``!=``, ``in``, ``not in``, ``matches``; hex compared
  case-insensitively). Algorithms MD5, SHA-1, SHA-256 (the default). ``FileMatch "a" "b"``:
  the two paths hold the same files (same relative names, same checksums; two files: same
  checksum). Metric ``Dataset.*.FileCount``.
* ``FileUniqueness ["path"] <number condition>``: share of files whose checksum no other file
  has (as Uniqueness counts values seen once); ``with matchFileName = "true"`` also requires a
  unique file name. Metrics ``Dataset.*.FileUniquenessRatio``, ``Dataset.*.FileCount``.
* Tags of every file rule: ``with recentFiles = N`` keeps the N most recently modified files;
  ``with uriRegex = "re"`` keeps files whose path the regex finds (applied after recentFiles).

No files to check is a FAIL (``No files found at <path>``). Failure messages follow Glue's
formats: ``50.00 % of files passed the threshold`` (as rows for row-level rules) and ``Value: 0.5
does not meet the constraint requirement.`` for the ratio.

Example:
    >>> from dataflow.quality.dqdl import parse_rule
    >>> plan = evaluate_file_rule(parse_rule('FileSize "/no/such/dir" > 1 KB'), None, now=NOW)
    >>> plan.message
    'No files found at /no/such/dir'
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from dataflow.errors import ConfigError, QualityError, StorageError
from dataflow.quality.compile import LeafPlan
from dataflow.quality.dqdl.ast import (
    Between,
    Comparison,
    Condition,
    DateLiteral,
    In,
    Matches,
    Now,
    NumberLiteral,
    Operand,
    Rule,
    Size,
    StringLiteral,
    TimeLiteral,
    VariableRef,
)
from dataflow.quality.fileaccess import (
    HASH_ALGORITHMS,
    FileAccess,
    FileInfo,
    checksum,
    is_s3,
    list_files,
    local_file,
)
from dataflow.quality.predicates import NOW, check_value, format_java, now_value

if TYPE_CHECKING:
    from dataflow.config import S3Settings

__all__ = [
    "HASH_ALGORITHMS",
    "NOW",
    "FileAccess",
    "FileInfo",
    "checksum",
    "evaluate_file_rule",
    "list_files",
]

_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def evaluate_file_rule(
    rule: Rule,
    con: duckdb.DuckDBPyConnection | None,
    *,
    now: dt.datetime,
    s3: S3Settings | None = None,
) -> LeafPlan:
    """Evaluate a file rule; the plan is already judged (``flag``) or a FAIL/ERROR (``fail``).

    Args:
        rule: a FileFreshness, FileSize, FileMatch or FileUniqueness rule.
        con: the connection whose view ``"primary"`` the files are inferred from when the rule
            names no path (None: the rule must name one).
        now: the instant ``now()`` stands for.
        s3: how ``s3://`` paths are read (the project's ``storage.s3``; None: AWS defaults).

    Example:
        >>> from dataflow.quality.dqdl import parse_rule
        >>> evaluate_file_rule(parse_rule('FileSize "/no/dir" > 1 B'), None, now=NOW).message
        'No files found at /no/dir'
    """
    try:
        return _evaluate(rule, con, now, FileAccess(s3))
    except (
        QualityError,
        StorageError,
        ConfigError,
        OSError,
        ValueError,
        zoneinfo.ZoneInfoNotFoundError,
    ) as exc:
        return _error(rule, str(exc) or type(exc).__name__)


# --- finding the files ---------------------------------------------------------------------------


def _location(text: str) -> str:
    """A rule's path: an ``s3://`` URI (``s3a://`` read as ``s3://``) or a local path."""
    if is_s3(text):
        return "s3://" + text.split("://", 1)[1]
    return text.removeprefix("file://")


def _inferred(con: duckdb.DuckDBPyConnection | None, files: FileAccess) -> list[FileInfo]:
    """The files the view ``"primary"`` reads (the literals of its read_* call)."""
    sql = ""
    if con is not None:
        rows = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'primary' AND NOT internal"
        ).fetchall()
        sql = str(rows[0][0]) if rows and rows[0][0] else ""
    found: dict[str, FileInfo] = {}
    for match in _LITERAL.finditer(sql):
        literal = match.group(1).replace("''", "'")
        if "/" not in literal and not Path(literal).suffix:
            continue  # option values and names, not paths
        if is_s3(literal) or any(c in literal for c in "*?["):
            listed = (
                files.glob(_location(literal))
                if any(c in literal for c in "*?[")
                else files.files(_location(literal))
            )
            found.update((f.path, f) for f in listed)
        elif Path(literal).is_file():
            found[literal] = local_file(Path(literal))
    if not found:
        raise QualityError(
            "cannot tell which files this dataset was read from (it is not read from files): "
            'give the path in the rule, e.g. FileSize "data/prices/" > 1 KB'
        )
    return list(found.values())


def _tag(rule: Rule, name: str) -> Operand | None:
    found = next((c for key, c in rule.tags.items() if key.lower() == name.lower()), None)
    if found is None:
        return None
    if not isinstance(found, Comparison) or found.op != "=":
        raise QualityError(f"with {name} takes '= value'")
    return found.operand


def _tag_text(rule: Rule, name: str) -> str | None:
    operand = _tag(rule, name)
    if operand is None:
        return None
    if isinstance(operand, StringLiteral):
        return operand.value
    if isinstance(operand, NumberLiteral):
        return format_java(operand.value).removesuffix(".0")
    raise QualityError(f"with {name} takes a quoted string")


def _select(rule: Rule, files: list[FileInfo]) -> list[FileInfo]:
    """Apply the recentFiles then uriRegex tags."""
    recent = _tag(rule, "recentFiles")
    if recent is not None:
        if not isinstance(recent, NumberLiteral) or int(recent.value) < 1:
            raise QualityError("with recentFiles takes a positive whole number")
        files = sorted(files, key=lambda f: f.modified, reverse=True)[: int(recent.value)]
    pattern = _tag_text(rule, "uriRegex")
    if pattern is not None:
        regex = re.compile(pattern)
        files = [f for f in files if regex.search(f.path)]
    return sorted(files, key=lambda f: f.path)


def _files(
    rule: Rule, con: duckdb.DuckDBPyConnection | None, files: FileAccess, index: int = 0
) -> list[FileInfo]:
    if len(rule.args) > index:
        return _select(rule, files.files(_location(rule.args[index])))
    return _select(rule, _inferred(con, files))


# --- the rules -----------------------------------------------------------------------------------


def _evaluate(
    rule: Rule, con: duckdb.DuckDBPyConnection | None, now: dt.datetime, access: FileAccess
) -> LeafPlan:
    kind = rule.rule_type
    if kind == "FileMatch" and rule.condition is None:
        return _match_paths(rule, access)
    if rule.condition is None:
        raise QualityError(f"{kind} needs a condition")
    files = _files(rule, con, access)
    count: dict[str, str | float] = {"Dataset.*.FileCount": float(len(files))}
    if not files:
        where = rule.args[0] if rule.args else "the dataset's location"
        return LeafPlan(rule, "fail", metrics=count, message=f"No files found at {where}")
    if kind == "FileFreshness":
        zone = zoneinfo.ZoneInfo(_tag_text(rule, "timeZone") or "UTC")
        condition = _numeric(rule.condition, lambda o: _instant(o, now, zone))
        passed = [check_value(f.modified.timestamp(), condition, now=now) for f in files]
        return _compliance(rule, passed, "FileFreshness", count)
    if kind == "FileSize":
        condition = _numeric(rule.condition, _bytes)
        passed = [check_value(float(f.size), condition, now=now) for f in files]
        sizes = [float(f.size) for f in files]
        count |= {"Dataset.*.MaximumFileSize": max(sizes), "Dataset.*.MinimumFileSize": min(sizes)}
        return _compliance(rule, passed, "FileSize", count)
    if kind == "FileMatch":
        return _match_checksums(rule, files, count, access)
    if kind == "FileUniqueness":
        return _uniqueness(rule, files, count, now, access)
    raise QualityError(f"rule type {kind} is not a file rule")


def _numeric(condition: Condition, convert: Callable[[Operand], float]) -> Condition:
    """The condition with each date or size operand replaced by its number."""

    def number(operand: Operand) -> Operand:
        return NumberLiteral(convert(operand))

    match condition:
        case Comparison(op, operand):
            return Comparison(op, number(operand))
        case Between(low, high, negated):
            low_n, high_n = number(low), number(high)
            assert isinstance(low_n, NumberLiteral)
            assert isinstance(high_n, NumberLiteral)
            # Glue's docs write `between now() and (now() - 45 minutes)`: order the bounds.
            if low_n.value > high_n.value:
                low_n, high_n = high_n, low_n
            return Between(low_n, high_n, negated)
        case In(values, negated) if not isinstance(values, VariableRef):
            return In(tuple(number(v) for v in values), negated)
    raise QualityError(f"unsupported condition for a file rule: {condition!r}")


def _instant(operand: Operand, now: dt.datetime, zone: zoneinfo.ZoneInfo) -> float:
    match operand:
        case Now() as instant:
            return now_value(instant, now).timestamp()
        case DateLiteral(day):
            return dt.datetime.combine(day, dt.time(), zone).timestamp()
        case TimeLiteral(_, clock):
            today = now.astimezone(zone).date()
            return dt.datetime.combine(today, clock, zone).timestamp()
    raise QualityError(f"FileFreshness compares with dates and times, not {operand!r}")


def _bytes(operand: Operand) -> float:
    if isinstance(operand, Size):
        return float(operand.amount * _UNITS[operand.unit])
    if isinstance(operand, NumberLiteral):
        return float(operand.value)
    raise QualityError(f"FileSize compares with sizes (5 MB), not {operand!r}")


def _compliance(
    rule: Rule, passed: list[bool], name: str, metrics: dict[str, str | float]
) -> LeafPlan:
    compliance = sum(passed) / len(passed)
    metrics = {f"Dataset.*.{name}.Compliance": compliance, **metrics}
    threshold = rule.threshold
    ok = check_value(compliance, threshold, now=NOW) if threshold else compliance == 1.0
    message = f"{compliance * 100:.2f} % of files passed the threshold"
    return _verdict(rule, ok, message, metrics)


def _algorithm(rule: Rule) -> str:
    name = (_tag_text(rule, "hashAlgorithm") or "SHA-256").upper()
    name = {"SHA1": "SHA-1", "SHA256": "SHA-256"}.get(name, name)
    if name not in HASH_ALGORITHMS:
        raise QualityError(
            f"hashAlgorithm {name!r} is not supported: use one of {', '.join(HASH_ALGORITHMS)}"
        )
    return name


def _match_checksums(
    rule: Rule, files: list[FileInfo], metrics: dict[str, str | float], access: FileAccess
) -> LeafPlan:
    algorithm = _algorithm(rule)
    assert rule.condition is not None
    condition = _lower(rule.condition)
    wrong = [
        f.name for f in files if not _string_check(access.checksum(f.path, algorithm), condition)
    ]
    shown = ", ".join(wrong[:5]) + (", ..." if len(wrong) > 5 else "")
    message = f"{len(wrong)} of {len(files)} files do not match the {algorithm} checksums: {shown}"
    return _verdict(rule, not wrong, message, metrics)


def _lower(condition: Condition) -> Condition:
    def text(operand: Operand) -> Operand:
        if isinstance(operand, StringLiteral):
            return StringLiteral(operand.value.strip().lower())
        if isinstance(operand, VariableRef) and isinstance(operand.value, str):
            return StringLiteral(operand.value.strip().lower())
        return operand

    match condition:
        case Comparison(op, operand):
            return Comparison(op, text(operand))
        case In(VariableRef(_, value), negated) if isinstance(value, tuple):
            return In(tuple(StringLiteral(v.strip().lower()) for v in value), negated)
        case In(values, negated) if not isinstance(values, VariableRef):
            return In(tuple(text(v) for v in values), negated)
        case Matches():
            return condition
    raise QualityError(f"FileMatch takes checksums (= or in [...]), not {condition!r}")


def _string_check(value: str, condition: Condition) -> bool:
    match condition:
        case Comparison("=", StringLiteral(other)):
            return value == other
        case Comparison("!=", StringLiteral(other)):
            return value != other
        case In(values, negated) if not isinstance(values, VariableRef):
            found = any(isinstance(v, StringLiteral) and v.value == value for v in values)
            return found != negated
        case Matches(pattern, negated):
            return (re.fullmatch(pattern, value) is not None) != negated
    raise QualityError(f"FileMatch takes checksums (= or in [...]), not {condition!r}")


def _match_paths(rule: Rule, access: FileAccess) -> LeafPlan:
    if len(rule.args) != 2:
        raise QualityError("FileMatch needs checksums (in [...]) or two paths to compare")
    algorithm = _algorithm(rule)
    roots = [_location(a) for a in rule.args]
    sides = [_select(rule, access.files(root)) for root in roots]
    metrics: dict[str, str | float] = {"Dataset.*.FileCount": float(len(sides[0]))}
    if not sides[0] or not sides[1]:
        empty = rule.args[0] if not sides[0] else rule.args[1]
        return LeafPlan(rule, "fail", metrics=metrics, message=f"No files found at {empty}")
    singles = [access.is_file(root) for root in roots]
    if all(singles):
        same = access.checksum(sides[0][0].path, algorithm) == access.checksum(
            sides[1][0].path, algorithm
        )
        return _verdict(rule, same, f"{rule.args[0]} does not match {rule.args[1]}", metrics)
    left, right = (
        {_relative(f, root, single): access.checksum(f.path, algorithm) for f in side}
        for side, root, single in zip(sides, roots, singles, strict=True)
    )
    differ = sorted(
        name for name in left.keys() | right.keys() if left.get(name) != right.get(name)
    )
    shown = ", ".join(differ[:5]) + (", ..." if len(differ) > 5 else "")
    message = f"{len(differ)} files differ between {rule.args[0]} and {rule.args[1]}: {shown}"
    return _verdict(rule, not differ, message, metrics)


def _relative(info: FileInfo, root: str, single: bool) -> str:
    """The file's name under ``root`` (its name alone when ``root`` is the file itself)."""
    if single:
        return info.name
    if is_s3(root):
        return info.path[len(root.rstrip("/")) + 1 :]
    return Path(info.path).relative_to(root).as_posix()


def _uniqueness(
    rule: Rule,
    files: list[FileInfo],
    metrics: dict[str, str | float],
    now: dt.datetime,
    access: FileAccess,
) -> LeafPlan:
    sums = [access.checksum(f.path) for f in files]
    names = [f.name for f in files]
    by_name = (_tag_text(rule, "matchFileName") or "false").lower() == "true"
    unique = sum(
        1
        for s, n in zip(sums, names, strict=True)
        if sums.count(s) == 1 and (not by_name or names.count(n) == 1)
    )
    ratio = unique / len(files)
    metrics = {"Dataset.*.FileUniquenessRatio": ratio, **metrics}
    assert rule.condition is not None
    ok = check_value(ratio, rule.condition, now=now)
    message = f"Value: {format_java(ratio)} does not meet the constraint requirement."
    return _verdict(rule, ok, message, metrics)


def _verdict(rule: Rule, ok: bool, message: str, metrics: dict[str, str | float]) -> LeafPlan:
    """A judged plan: the ``flag`` judge passes on 1.0 and fails with ``message`` otherwise."""
    return LeafPlan(rule, "flag", value=1.0 if ok else 0.0, metrics=metrics, message=message)


def _error(rule: Rule, message: str) -> LeafPlan:
    return LeafPlan(rule, "fail", result="ERROR", message=message)
