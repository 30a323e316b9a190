"""What a failed ruleset does to the data it checked: the policy, and where rulesets come from.

A table's ruleset is the project's ``quality/<table>.dqdl`` if there is one, else the built-in
``dataflow/quality/rulesets/<table>.dqdl`` (shipped for every default clean table), else none.
Its policy is, first found:

1. ``quality.policies.<table>`` in ``dataflow.yaml`` (operations can change a policy without
   copying a ruleset);
2. the ruleset's own ``Metadata = {"Policy": "quarantine"}``;
3. ``quality.default_policy`` in ``dataflow.yaml``;
4. :attr:`Policy.WARN`.

Example:
    >>> Policy("quarantine").publishes
    True
    >>> Policy.FAIL.publishes
    False
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflow.config import Policy
from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.quality.dqdl import Ruleset

BUILTIN_RULESETS = Path(__file__).parent / "rulesets"
"""The rulesets shipped for the default clean tables."""
POLICY_KEY = "Policy"
"""The ruleset ``Metadata`` key naming its policy."""

__all__ = ["BUILTIN_RULESETS", "POLICY_KEY", "Policy", "find_ruleset", "policy_for"]


def find_ruleset(settings: Settings, table: str) -> Path | None:
    """The ruleset file of ``table``: the project's, else the built-in one, else None.

    Example:
        >>> find_ruleset(settings, "time_series").name  # doctest: +SKIP
        'time_series.dqdl'
    """
    for folder in (Path(settings.project_dir) / "quality", BUILTIN_RULESETS):
        path = folder / f"{table}.dqdl"
        if path.is_file():
            return path
    return None


def policy_for(table: str, ruleset: Ruleset, settings: Settings) -> Policy:
    """The policy of ``table``'s ruleset (see the module docstring for the order).

    Raises:
        ConfigError: a policy that is not fail, warn or quarantine (naming where it was set).

    Example:
        >>> from dataflow.quality import parse_ruleset
        >>> ruleset = parse_ruleset('Metadata = {"Policy": "fail"} Rules = [ RowCount > 0 ]')
        >>> policy_for("time_series", ruleset, settings)  # doctest: +SKIP
        <Policy.FAIL: 'fail'>
    """
    # ``quality`` is not a Settings section yet (see the report to the lead): read it leniently.
    section: Any = getattr(settings, "quality", None)
    configured = dict(_get(section, "policies") or {})
    if table in configured:
        return _parse(configured[table], f"quality.policies.{table} in dataflow.yaml")
    declared = ruleset.metadata.get(POLICY_KEY)
    if declared is not None:
        return _parse(declared, f'the ruleset\'s Metadata "{POLICY_KEY}"')
    default = _get(section, "default_policy")
    if default is not None:
        return _parse(default, "quality.default_policy in dataflow.yaml")
    return Policy.WARN


def _get(section: Any, name: str) -> Any:
    if section is None:
        return None
    if isinstance(section, dict):
        return section.get(name)
    return getattr(section, name, None)


def _parse(value: Any, where: str) -> Policy:
    try:
        return Policy(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Policy)
        raise ConfigError(f"{where}: policy {value!r} is not one of {choices}") from None
