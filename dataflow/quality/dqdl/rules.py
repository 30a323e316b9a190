"""The DQDL rule types as data: parameters, return types and what each type allows.

Transcribed from Glue's rules configuration (awslabs/dqdl ``configuration/rules/rules-config.json``)
and the rule-type pages of the DQDL reference
(https://docs.aws.amazon.com/glue/latest/dg/dqdl.html); see ``shared/reference/aws-semantics.md``
§1.5 and §1.7. The parser validates against this table; the evaluator reads the same table.

Return types say which conditions a rule takes: ``BOOLEAN`` (no condition), ``NUMBER``,
``STRING``, ``DATE``, ``DURATION`` and ``SIZE``. A rule with several may take any of them (the
parser tries each), and with ``BOOLEAN`` among them the condition is optional (CustomSql row form).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal, TypeAlias

ReturnType: TypeAlias = Literal["BOOLEAN", "NUMBER", "STRING", "DATE", "DURATION", "SIZE"]


@dataclass(frozen=True)
class RuleType:
    """One rule type of DQDL.

    Attributes:
        name: as written in DQDL, case-sensitive.
        params: parameter names, in order; with ``var_args`` the last one repeats.
        min_params: the fewest parameters accepted.
        var_args: any number (at least ``min_params``) of parameters is accepted.
        return_types: the kinds of condition accepted (see the module docstring).
        threshold: ``with threshold`` is allowed.
        where: ``where "..."`` is allowed.
        row_level: produces row-level outcomes (Pass/Fail per row).
        analyzer_only: only valid in the Analyzers section (AllStatistics).
        composite_row_excluded: not evaluable in composite ROW mode (ratio rules).
        experimental: marked experimental in the grammar (file rules, DetectAnomalies).
    """

    name: str
    params: tuple[str, ...] = ()
    min_params: int | None = None
    var_args: bool = False
    return_types: tuple[ReturnType, ...] = ("NUMBER",)
    threshold: bool = False
    where: bool = False
    row_level: bool = False
    analyzer_only: bool = False
    composite_row_excluded: bool = False
    experimental: bool = False

    @property
    def fewest(self) -> int:
        """The fewest parameters this type accepts."""
        return len(self.params) if self.min_params is None else self.min_params

    def accepts_count(self, count: int) -> bool:
        """True when ``count`` parameters are acceptable."""
        if self.var_args:
            return count >= self.fewest
        return self.fewest <= count <= len(self.params)

    @property
    def is_boolean(self) -> bool:
        """The rule may stand without a condition."""
        return "BOOLEAN" in self.return_types


_COL = ("TargetColumn",)

RULE_TYPES: dict[str, RuleType] = {
    t.name: t
    for t in (
        RuleType("AggregateMatch", ("AggregateExpression1", "AggregateExpression2")),
        RuleType("AllStatistics", _COL, analyzer_only=True, experimental=True),
        RuleType("ColumnCorrelation", ("TargetColumn1", "TargetColumn2"), where=True),
        RuleType("ColumnCount"),
        RuleType(
            "ColumnDataType",
            _COL,
            return_types=("STRING",),
            threshold=True,
            where=True,
            row_level=True,
        ),
        RuleType("ColumnExists", _COL, return_types=("BOOLEAN",)),
        RuleType("ColumnLength", _COL, where=True, row_level=True),
        # The rules config does not allow where here, the ColumnNamesMatchPattern page shows it.
        RuleType(
            "ColumnNamesMatchPattern", ("PatternToMatch",), return_types=("BOOLEAN",), where=True
        ),
        RuleType(
            "ColumnValues",
            _COL,
            return_types=("STRING", "NUMBER", "DATE"),
            threshold=True,
            where=True,
            row_level=True,
        ),
        RuleType("Completeness", _COL, where=True, row_level=True, composite_row_excluded=True),
        RuleType(
            "CustomSql",
            ("CustomSqlStatement",),
            return_types=("NUMBER", "BOOLEAN"),
            threshold=True,
            row_level=True,
        ),
        RuleType("DataFreshness", _COL, return_types=("DURATION",), where=True, row_level=True),
        RuleType(
            "DatasetMatch",
            ("ReferenceDatasetAlias", "KeyColumnMappings", "MatchColumnMappings"),
            min_params=2,
            composite_row_excluded=True,
        ),
        RuleType(
            "DetectAnomalies",
            ("MetricParameter",),
            var_args=True,
            return_types=("BOOLEAN",),
            experimental=True,
        ),
        RuleType("DistinctValuesCount", _COL, where=True),
        RuleType("Entropy", _COL, where=True),
        RuleType(
            "FileFreshness",
            ("S3Path",),
            min_params=0,
            return_types=("DATE",),
            threshold=True,
            experimental=True,
        ),
        RuleType(
            "FileMatch",
            ("S3Path", "ReferenceS3Path"),
            min_params=0,
            return_types=("STRING", "BOOLEAN"),
            experimental=True,
        ),
        RuleType(
            "FileSize",
            ("S3Path",),
            min_params=0,
            return_types=("SIZE",),
            threshold=True,
            experimental=True,
        ),
        RuleType("FileUniqueness", ("S3Path",), min_params=0, experimental=True),
        RuleType("IsComplete", _COL, return_types=("BOOLEAN",), where=True, row_level=True),
        RuleType(
            "IsPrimaryKey",
            _COL,
            var_args=True,
            return_types=("BOOLEAN",),
            where=True,
            row_level=True,
        ),
        RuleType(
            "IsUnique", _COL, var_args=True, return_types=("BOOLEAN",), where=True, row_level=True
        ),
        RuleType("Mean", _COL, where=True),
        RuleType(
            "ReferentialIntegrity",
            ("PrimaryDatasetColumns", "ReferenceDatasetColumns"),
            composite_row_excluded=True,
        ),
        RuleType("RowCount", where=True),
        RuleType("RowCountMatch", ("ReferenceDatasetAlias",)),
        RuleType("SchemaMatch", ("ReferenceDatasetAlias",)),
        RuleType("StandardDeviation", _COL, where=True, composite_row_excluded=True),
        RuleType("Sum", _COL, where=True),
        RuleType("UniqueValueRatio", _COL, where=True),
        RuleType("Uniqueness", _COL, var_args=True, where=True, composite_row_excluded=True),
        RuleType("Variance", _COL, where=True),
    )
}

#: Functions of dynamic expressions (``RowCount > avg(last(10)) * 0.8``).
FUNCTIONS: frozenset[str] = frozenset(
    {"last", "avg", "median", "min", "max", "sum", "std", "abs", "index"}
)


def get_rule_type(name: str) -> RuleType | None:
    """The rule type called ``name`` (case-sensitive), or None.

    Example:
        >>> get_rule_type("IsComplete").return_types
        ('BOOLEAN',)
        >>> get_rule_type("iscomplete") is None
        True
    """
    return RULE_TYPES.get(name)


def suggest(name: str) -> str | None:
    """The known rule type closest to a misspelt ``name``, if any is close.

    Example:
        >>> suggest("IsCompletee"), suggest("Zzz")
        ('IsComplete', None)
    """
    lowered = {t.lower(): t for t in RULE_TYPES}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, RULE_TYPES, n=1, cutoff=0.75)
    return close[0] if close else None
