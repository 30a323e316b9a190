"""Partition discovery: which folders under a table's root are partitions, and their values.

As the Glue crawler does it (``reference/aws-semantics.md`` section 2): every folder level
between the table root and the data files is a partition key. A level whose folders are all
Hive-style ``key=value`` with the same key is named by that key; any other level is named
``partition_0``, ``partition_1``, ... after its depth. All partition keys are strings.

Files and folders whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``_manifests/``,
``.tmp-*``) are not data and are left out, as Hive and Spark do.

Example:
    >>> keys, groups = discover(["t/year=2024/m/a.json", "t/year=2023/n/b.json"], "t")
    >>> keys
    ['year', 'partition_1']
    >>> groups
    {('2023', 'n'): ['t/year=2023/n/b.json'], ('2024', 'm'): ['t/year=2024/m/a.json']}
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote


def is_hidden(relative_key: str) -> bool:
    """True when a part of the key (relative to the table root) starts with ``_`` or ``.``.

    Example:
        >>> is_hidden("year=2024/_SUCCESS"), is_hidden("year=2024/part-0.json")
        (True, False)
    """
    return any(part.startswith(("_", ".")) for part in relative_key.split("/"))


def normalize_root(root: str) -> str:
    """The root as a key prefix: no leading slash, one trailing slash (``""`` for the top).

    Example:
        >>> normalize_root("/raw/twelvedata/quote"), normalize_root("")
        ('raw/twelvedata/quote/', '')
    """
    root = root.strip("/")
    return f"{root}/" if root else ""


def data_keys(keys: Sequence[str], root: str) -> list[str]:
    """The keys under ``root`` that can hold data (not hidden), sorted.

    Example:
        >>> data_keys(["t/a.json", "t/_SUCCESS", "u/b.json"], "t")
        ['t/a.json']
    """
    prefix = normalize_root(root)
    return sorted(
        key for key in keys if key.startswith(prefix) and not is_hidden(key[len(prefix) :])
    )


def discover(keys: Sequence[str], root: str) -> tuple[list[str], dict[tuple[str, ...], list[str]]]:
    """Find the partition keys and the values of each data file under ``root``.

    The depth of the partitioning is the smallest folder depth of any data file: a file
    deeper than that lies in a sub-folder *of* a partition (as Glue reads such trees).

    Args:
        keys: object keys (others than those under ``root`` are ignored, as are hidden ones).
        root: the table's root prefix, e.g. ``raw/twelvedata/quote``.

    Returns:
        The partition key names (empty when the files lie directly under ``root``), and
        for each tuple of partition values the sorted object keys in that partition.

    Example:
        >>> discover(["d/2024/01/x.csv", "d/2024/02/y.csv"], "d")
        (['partition_0', 'partition_1'], {('2024', '01'): ['d/2024/01/x.csv'], \
('2024', '02'): ['d/2024/02/y.csv']})
    """
    prefix = normalize_root(root)
    found = data_keys(keys, root)
    if not found:
        return [], {}
    folders = [key[len(prefix) :].split("/")[:-1] for key in found]
    depth = min(len(parts) for parts in folders)
    names: list[str] = []
    hive: list[bool] = []
    for level in range(depth):
        level_keys = {_hive_key(parts[level]) for parts in folders}
        if len(level_keys) == 1 and None not in level_keys:
            key_name = level_keys.pop()
            assert key_name is not None
            # Hive stores partition names lowercase; two levels with one key stay distinct.
            name = key_name.lower()
            hive.append(name not in names)
            names.append(name if name not in names else f"partition_{level}")
        else:
            hive.append(False)
            names.append(f"partition_{level}")
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, parts in zip(found, folders, strict=True):
        values = tuple(
            _hive_value(parts[level]) if hive[level] else parts[level] for level in range(depth)
        )
        groups.setdefault(values, []).append(key)
    return names, dict(sorted(groups.items()))


def partition_folder(root: str, depth: int, key: str) -> str:
    """The folder of the partition holding ``key``: its first ``depth`` folders under ``root``.

    Folder names are kept verbatim (they may be escaped), so this is the partition's location.

    Example:
        >>> partition_folder("t", 1, "t/year=2024/a/b.json")
        't/year=2024/'
    """
    prefix = normalize_root(root)
    parts = key[len(prefix) :].split("/")[:depth]
    return prefix + "".join(f"{part}/" for part in parts)


def _hive_key(folder: str) -> str | None:
    key, sep, _ = folder.partition("=")
    return key if sep and key else None


def _hive_value(folder: str) -> str:
    # Hive escapes special characters in partition values as %XX.
    return unquote(folder.partition("=")[2])


__all__ = ["data_keys", "discover", "is_hidden", "normalize_root", "partition_folder"]
