"""Host import: parallel hashing gives the same digests, and the stat cache lets a
re-import of an unchanged tree skip reading file contents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.store import statcache
from tests.trees import build_host, random_spec


class CountingLocalStore(LocalStore):
    """A LocalStore counting the host files it reads."""

    reads = 0

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        self.reads += 1
        return super().put_file(path)


def _spec_files(count: int) -> dict[str, bytes]:
    return {f"f{index}": os.urandom(index * 37 % 3000) for index in range(count)}


def test_parallel_and_serial_hashing_agree(tmp_path: Path) -> None:
    host = build_host(str(tmp_path / "h"), random_spec(5, entries=200))
    digests = {import_host_tree(LocalStore(str(tmp_path / f"s{w}")), host, workers=w) for w in (1, 4, 16)}
    assert len(digests) == 1


def test_reimport_of_unchanged_tree_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "RACY_SECONDS", 0.0)  # the racy rule has its own test
    host = build_host(str(tmp_path / "h"), {"d": _spec_files(50), "top": b"top"})
    store = CountingLocalStore(str(tmp_path / "s"))
    first = import_host_tree(store, host)
    assert store.reads == 51
    store.reads = 0
    again = CountingLocalStore(str(tmp_path / "s"))  # a new process would load the sqlite cache
    assert import_host_tree(again, host) == first
    assert again.reads == 0

    # same size, new content: ctime moves, so the file is read again
    with open(os.path.join(host, "d", "f3"), "r+b") as stream:
        data = stream.read()
        stream.seek(0)
        stream.write(bytes(255 - byte for byte in data))
    changed = import_host_tree(again, host)
    assert again.reads == 1 and changed != first

    # a file replaced by another (new inode)
    os.unlink(os.path.join(host, "top"))
    Path(host, "top").write_bytes(b"top")
    assert import_host_tree(again, host) == changed
    assert again.reads == 2


def test_racily_clean_files_are_not_cached(tmp_path: Path) -> None:
    host = build_host(str(tmp_path / "h"), _spec_files(5))  # written just now
    store = CountingLocalStore(str(tmp_path / "s"))
    import_host_tree(store, host)
    import_host_tree(store, host)
    assert store.reads == 10


def test_cache_entry_for_a_blob_no_longer_in_the_store_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "RACY_SECONDS", 0.0)
    host = build_host(str(tmp_path / "h"), {"a": b"content"})
    store = CountingLocalStore(str(tmp_path / "s"))
    digest = import_host_tree(store, host)
    blob = CasDirectory(store, digest).file_digest("a")
    object_path = os.path.join(store.root, "objects", blob[:2], blob[2:])
    os.unlink(object_path)
    import_host_tree(store, host)
    assert store.reads == 2 and os.path.exists(object_path)


def test_properties(tmp_path: Path) -> None:
    host = build_host(str(tmp_path / "h"), {"a": b"1"})
    os.chmod(os.path.join(host, "a"), 0o640)
    store = LocalStore(str(tmp_path / "s"))
    plain = import_host_tree(store, host)
    with_mode = import_host_tree(store, host, properties=["unix_mode"])
    with_mtime = import_host_tree(store, host, properties=["mtime"])
    assert len({plain, with_mode, with_mtime}) == 3
    message = store.get_directory(with_mode)
    assert message.files[0].node_properties.unix_mode.value == 0o640
    with pytest.raises(ValueError):
        import_host_tree(store, host, properties=["owner"])
