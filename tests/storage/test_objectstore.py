"""Object stores (local folder and S3): atomic, create-only writes; listing; key rules."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dataflow.config import load_settings
from dataflow.errors import ConfigError, ImmutableError, StorageError
from dataflow.storage import LocalStore, ObjectStore, S3Store, open_store


def test_put_get_exists_and_url(st_store: LocalStore) -> None:
    st_store.put_bytes("raw/a/b.bin", b"\x00\x01payload")
    assert st_store.exists("raw/a/b.bin")
    assert not st_store.exists("raw/a/c.bin")
    assert st_store.get_bytes("raw/a/b.bin") == b"\x00\x01payload"
    assert st_store.url_for("raw/a/b.bin") == str(Path(st_store.uri) / "raw" / "a" / "b.bin")
    assert Path(st_store.url_for("raw/a/b.bin")).read_bytes() == b"\x00\x01payload"
    assert isinstance(st_store, ObjectStore)


def test_no_overwrite_raises_and_keeps_the_original(st_any: ObjectStore) -> None:
    st_any.put_bytes("raw/x.json", b"original")
    with pytest.raises(ImmutableError, match=r"raw/x\.json"):
        st_any.put_bytes("raw/x.json", b"replacement")
    assert st_any.get_bytes("raw/x.json") == b"original"
    assert [info.key for info in st_any.list()] == ["raw/x.json"]
    if isinstance(st_any, LocalStore):
        assert not list(Path(st_any.uri).rglob(".tmp-*")), "temp file left behind"


def test_overwrite_true_replaces(st_any: ObjectStore) -> None:
    st_any.put_bytes("m.json", b"v1")
    st_any.put_bytes("m.json", b"v2", overwrite=True)
    assert st_any.get_bytes("m.json") == b"v2"
    assert st_any.url_for("m.json").endswith("/m.json")


def test_temp_files_are_invisible_to_list(st_store: LocalStore) -> None:
    st_store.put_bytes("raw/q/one.gz", b"1")
    folder = Path(st_store.uri) / "raw" / "q"
    (folder / ".tmp-two.gz-abc123").write_bytes(b"half written")
    (folder / ".tmp-dir").mkdir()
    (folder / ".tmp-dir" / "inner").write_bytes(b"x")
    listed = st_store.list()
    assert [info.key for info in listed] == ["raw/q/one.gz"]
    assert listed[0].size == 1
    assert listed[0].modified is not None
    assert listed[0].modified.tzinfo is not None


def test_failed_write_leaves_nothing(st_store: LocalStore) -> None:
    with pytest.raises(TypeError):
        st_store.put_bytes("raw/bad.bin", "not bytes")  # type: ignore[arg-type]
    assert not st_store.exists("raw/bad.bin")
    assert not [p for p in Path(st_store.uri).rglob("*") if p.is_file()]


def test_concurrent_puts_of_one_key_one_wins(st_any: ObjectStore) -> None:
    writers = 6
    barrier = threading.Barrier(writers)
    outcomes: dict[int, str] = {}

    def put(number: int) -> None:
        barrier.wait()
        try:
            st_any.put_bytes("raw/race.bin", f"writer {number}".encode() * 10_000)
            outcomes[number] = "won"
        except ImmutableError:
            outcomes[number] = "immutable"

    threads = [threading.Thread(target=put, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == writers
    assert len(winners) == 1, outcomes
    assert st_any.get_bytes("raw/race.bin") == f"writer {winners[0]}".encode() * 10_000
    assert [info.key for info in st_any.list()] == ["raw/race.bin"]
    if isinstance(st_any, LocalStore):
        assert not list(Path(st_any.uri).rglob(".tmp-*"))


def test_list_is_recursive_sorted_and_filters_by_string_prefix(st_any: ObjectStore) -> None:
    for key in ["raw/b/2", "raw/a/1", "raw/ab/3", "results/q.csv", "raw/a/sub/4"]:
        st_any.put_bytes(key, b".")
    assert [i.key for i in st_any.list()] == [
        "raw/a/1",
        "raw/a/sub/4",
        "raw/ab/3",
        "raw/b/2",
        "results/q.csv",
    ]
    assert [i.key for i in st_any.list("raw/a")] == ["raw/a/1", "raw/a/sub/4", "raw/ab/3"]
    assert [i.key for i in st_any.list("raw/a/")] == ["raw/a/1", "raw/a/sub/4"]
    assert st_any.list("nothing/here/") == []
    assert not st_any.exists("raw/a"), "a prefix is not an object"
    assert all(i.modified is not None and i.modified.tzinfo is not None for i in st_any.list())


def test_list_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert LocalStore(tmp_path / "never-created").list() == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/../b", "../up", "a/./b", "a\\b", "a/.tmp-x", "trailing/"]
)
def test_bad_keys_are_rejected(st_any: ObjectStore, key: str) -> None:
    with pytest.raises(StorageError, match="invalid object key"):
        st_any.put_bytes(key, b"x")


def test_missing_object_is_a_storage_error(st_any: ObjectStore) -> None:
    with pytest.raises(StorageError, match="no such object"):
        st_any.get_bytes("raw/none")


def test_open_store_local_and_remote(tmp_path: Path) -> None:
    local = open_store(load_settings(tmp_path, env={}))
    assert isinstance(local, LocalStore)
    assert local.uri == str((tmp_path / "warehouse").resolve())
    remote = open_store(
        load_settings(
            tmp_path,
            overrides={"warehouse": "s3://bucket/some/prefix/", "storage.s3.anon": True},
            env={},
        )
    )
    assert isinstance(remote, S3Store)
    assert remote.uri == "s3://bucket/some/prefix"
    assert remote.url_for("raw/x") == "s3://bucket/some/prefix/raw/x"
    with pytest.raises(ConfigError, match="unsupported scheme 'gs'"):
        open_store(load_settings(tmp_path, overrides={"warehouse": "gs://b/p"}, env={}))
