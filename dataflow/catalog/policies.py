"""The crawler's policies and its result: what it may change, and what it did.

The policies are Glue's ``SchemaChangePolicy`` and ``RecrawlPolicy``
(``reference/aws-semantics.md`` section 2), one enum member per documented value.

Example:
    >>> UpdateBehavior("LOG"), RecrawlPolicy("new-folders").name
    (<UpdateBehavior.LOG: 'LOG'>, 'CRAWL_NEW_FOLDERS_ONLY')
    >>> CrawlResult(table="raw.quote").changed
    False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from dataflow.catalog.hivetypes import Column
from dataflow.errors import ConfigError

_E = TypeVar("_E", bound=StrEnum)


class UpdateBehavior(StrEnum):
    """What a crawl does when the files' schema differs from the table's (Glue's UpdateBehavior)."""

    UPDATE_IN_DATABASE = "UPDATE_IN_DATABASE"
    """Apply it: add new columns, change widened types, remove columns no file has (default)."""
    LOG = "LOG"
    """Change nothing in the table; report the differences in ``CrawlResult.logged_only``."""


class DeleteBehavior(StrEnum):
    """What a crawl does with partitions (or a whole table) whose files are gone."""

    DEPRECATE_IN_DATABASE = "DEPRECATE_IN_DATABASE"
    """Keep them, marked ``DEPRECATED_BY_CRAWLER`` (a table also gets ``deprecated``; default)."""
    DELETE_FROM_DATABASE = "DELETE_FROM_DATABASE"
    """Delete them from the catalog."""
    LOG = "LOG"
    """Change nothing; report them in ``CrawlResult.logged_only``."""


class RecrawlPolicy(StrEnum):
    """Which files a crawl of an existing table reads (Glue's RecrawlPolicy)."""

    CRAWL_EVERYTHING = "everything"
    """Every file (unchanged ones cost nothing: their recorded schema is reused)."""
    CRAWL_NEW_FOLDERS_ONLY = "new-folders"
    """Only partition folders not yet registered; forces both behaviours to ``LOG``."""


@dataclass
class ColumnChange:
    """A column whose type changed."""

    name: str
    old_type: str
    new_type: str


@dataclass
class CrawlResult:
    """What one crawl found and changed.

    ``files``, ``records`` and ``bytes`` describe all the data under the table's location
    (``records`` is estimated for files not read, as Glue's ``recordCount``). Changes held
    back by a ``LOG`` policy are described in ``logged_only``, not in the other lists.
    """

    table: str
    created: bool = False
    columns_added: list[Column] = field(default_factory=list)
    columns_changed: list[ColumnChange] = field(default_factory=list)
    columns_removed: list[Column] = field(default_factory=list)
    partitions_added: list[list[str]] = field(default_factory=list)
    partitions_removed: list[list[str]] = field(default_factory=list)
    partitions_deprecated: list[list[str]] = field(default_factory=list)
    files: int = 0
    records: int = 0
    bytes: int = 0
    version: int = 0
    logged_only: list[str] = field(default_factory=list)
    files_read: int = 0
    skipped: list[str] = field(default_factory=list)
    deprecated: bool = False
    deleted: bool = False

    @property
    def changed(self) -> bool:
        """True when the catalog was changed (beyond statistics)."""
        return bool(
            self.created
            or self.columns_added
            or self.columns_changed
            or self.columns_removed
            or self.partitions_added
            or self.partitions_removed
            or self.partitions_deprecated
            or self.deprecated
            or self.deleted
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``changed`` included)."""
        return {**asdict(self), "changed": self.changed}


def parse_policy(kind: type[_E], value: _E | str, option: str) -> _E:
    """``value`` as a member of the policy enum ``kind``.

    Raises:
        ConfigError: not a value of ``kind``; the message lists the valid ones.

    Example:
        >>> parse_policy(DeleteBehavior, "LOG", "--delete-behavior")
        <DeleteBehavior.LOG: 'LOG'>
    """
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ConfigError(f"{option} {value!r} is not known — use one of {choices}") from None


__all__ = [
    "ColumnChange",
    "CrawlResult",
    "DeleteBehavior",
    "RecrawlPolicy",
    "UpdateBehavior",
    "parse_policy",
]
