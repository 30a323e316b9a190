"""Partition discovery: Hive-style key=value folders, unnamed folders, hidden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflow.catalog.partitions import data_keys, discover, is_hidden, partition_folder
from dataflow.storage import LocalStore


@pytest.fixture
def cr_tree(tmp_path: Path) -> LocalStore:
    """A generated tree with Hive partitions, an unnamed tree and hidden objects."""
    store = LocalStore(tmp_path / "wh")
    for key in [
        "sales/year=2024/month=01/a.json",
        "sales/year=2024/month=02/b.json",
        "sales/year=2023/month=12/c.json",
        "sales/year=2023/month=12/d.json",
        "sales/_SUCCESS",
        "sales/year=2023/.hidden/e.json",
        "logs/2024/01/x.csv",
        "logs/2024/02/y.csv",
        "flat/one.csv",
    ]:
        store.put_bytes(key, b"{}")
    return store


def keys(store: LocalStore, prefix: str) -> list[str]:
    return [info.key for info in store.list(prefix)]


def test_hive_partitions_named_by_key(cr_tree: LocalStore) -> None:
    names, groups = discover(keys(cr_tree, "sales/"), "sales")
    assert names == ["year", "month"]
    assert groups == {
        ("2023", "12"): ["sales/year=2023/month=12/c.json", "sales/year=2023/month=12/d.json"],
        ("2024", "01"): ["sales/year=2024/month=01/a.json"],
        ("2024", "02"): ["sales/year=2024/month=02/b.json"],
    }


def test_unnamed_partitions_are_partition_n_with_string_values(cr_tree: LocalStore) -> None:
    names, groups = discover(keys(cr_tree, "logs/"), "logs/")
    assert names == ["partition_0", "partition_1"]
    assert list(groups) == [("2024", "01"), ("2024", "02")]
    assert all(isinstance(v, str) for values in groups for v in values)


def test_files_directly_under_root_have_no_partitions(cr_tree: LocalStore) -> None:
    assert discover(keys(cr_tree, "flat/"), "flat") == ([], {(): ["flat/one.csv"]})


def test_mixed_levels_fall_back_to_unnamed() -> None:
    names, groups = discover(["t/year=2024/a", "t/2023/b", "t/k=1/c"], "t")
    assert names == ["partition_0"]
    assert sorted(groups) == [("2023",), ("k=1",), ("year=2024",)]


def test_depth_is_the_shallowest_data_file() -> None:
    names, groups = discover(["t/d=1/x/a.json", "t/d=2/b.json"], "t")
    assert names == ["d"]
    assert groups == {("1",): ["t/d=1/x/a.json"], ("2",): ["t/d=2/b.json"]}


def test_hive_values_are_unescaped_and_keys_lowercased() -> None:
    names, groups = discover(["t/Sym=EUR%2FUSD/a.json"], "t")
    assert names == ["sym"]
    assert list(groups) == [("EUR/USD",)]


def test_same_key_at_two_levels_stays_distinct() -> None:
    names, _ = discover(["t/k=1/k=2/a"], "t")
    assert names == ["k", "partition_1"]


def test_nothing_under_root() -> None:
    assert discover(["other/a.json"], "t") == ([], {})


def test_hidden_objects_are_not_data(cr_tree: LocalStore) -> None:
    assert is_hidden("_manifests/r1.json")
    assert is_hidden("year=2023/.hidden/e.json")
    assert not is_hidden("year=2023/month=12/c.json")
    assert "sales/_SUCCESS" not in data_keys(keys(cr_tree, "sales/"), "sales")


def test_partition_folder_keeps_escaped_names() -> None:
    assert partition_folder("t", 1, "t/Sym=EUR%2FUSD/a.json") == "t/Sym=EUR%2FUSD/"
    assert partition_folder("", 2, "2024/01/a.csv") == "2024/01/"
