"""Host import: parallel hashing gives the same digests, and the stat cache lets a
re-import of an unchanged tree skip reading file contents."""

from __future__ import annotations

import importlib
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from casvfs import CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.gc import DEFAULT_GRACE, collect
from casvfs.store import statcache
from tests.trees import build_host, random_spec

# the module, which the package's "collect" (the function) hides
gc_collect = importlib.import_module("casvfs.gc.collect")


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


def _imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, CountingLocalStore, Digest]:
    """A small host tree (settled at once) imported into a counting store."""
    monkeypatch.setattr(statcache, "RACY_SECONDS", 0.0)
    host = build_host(str(tmp_path / "h"), {"a": b"content", "d": {"b": b"other"}})
    store = CountingLocalStore(str(tmp_path / "s"))
    return host, store, import_host_tree(store, host)


def test_a_blob_removed_by_gc_is_stored_again_by_the_next_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, store, digest = _imported(tmp_path, monkeypatch)
    assert store.reads == 2
    later = time.time() + 3 * DEFAULT_GRACE  # everything old and unreferenced by then
    with monkeypatch.context() as patch:
        patch.setattr(gc_collect.time, "time", lambda: later)
        assert collect(store).removed == 4  # a, b, d and the root
    assert not store.check_tree(digest).complete
    assert import_host_tree(store, host) == digest
    assert store.reads == 4 and store.check_tree(digest).complete


def test_a_blob_removed_by_hand_is_trusted_until_fsck(
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
    assert store.reads == 1 and not os.path.exists(object_path)  # the cache vouched for it
    store.fsck()
    import_host_tree(store, host)
    assert store.reads == 2 and os.path.exists(object_path)


def test_an_import_during_which_objects_go_checks_everything_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, store, digest = _imported(tmp_path, monkeypatch)
    victim = Digest.parse(CasDirectory(store, digest).file_digest("a") + "/7")
    cache = store.stat_cache()
    lookup = cache.lookup_directory

    def gc_meanwhile(*args: Any) -> Any:
        """What a gc in another process does while the walk trusts the cache."""
        if os.path.exists(store.object_path(victim)):
            cache.revoke()
            os.unlink(store.object_path(victim))
        return lookup(*args)

    monkeypatch.setattr(cache, "lookup_directory", gc_meanwhile)
    assert import_host_tree(store, host) == digest
    assert store.check_tree(digest).complete and store.reads == 3


def test_no_import_trusts_the_cache_while_objects_are_removed(tmp_path: Path) -> None:
    cache = LocalStore(str(tmp_path / "s")).stat_cache()
    before = cache.trust()
    with cache.removing():
        assert cache.trust().generation is None and not cache.still(before)
    after = cache.trust()
    assert after.generation is not None and after != before and cache.still(after)


class _Watching(CountingLocalStore):
    """Counts what an import asks of the store besides reading host files."""

    asked = 0

    def has(self, digest: Digest) -> bool:
        self.asked += 1
        return super().has(digest)

    def put_bytes(self, data: bytes) -> Digest:
        self.asked += 1
        return super().put_bytes(data)


def test_an_unchanged_tree_is_taken_whole_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "RACY_SECONDS", 0.0)
    host = build_host(str(tmp_path / "h"), random_spec(3, entries=120))
    first = import_host_tree(LocalStore(str(tmp_path / "s")), host)
    again = _Watching(str(tmp_path / "s"))  # a new process
    assert import_host_tree(again, host) == first
    assert (again.reads, again.asked) == (0, 0)


def _mutate(rng: random.Random, host: str) -> str:
    """One random change to the host tree; what it did."""
    paths = sorted(str(p.relative_to(host)) for p in Path(host).rglob("*"))
    files = [p for p in paths if Path(host, p).is_file() and not Path(host, p).is_symlink()]
    dirs = [p for p in paths if Path(host, p).is_dir() and not Path(host, p).is_symlink()]
    action = rng.choice(["rewrite", "add", "remove", "chmod", "rename", "relink", "mkdir"])
    if action == "rewrite" and files:
        path = Path(host, rng.choice(files))
        data = path.read_bytes()
        path.write_bytes(bytes(255 - byte for byte in data) or b"x")  # same size
    elif action == "add":
        Path(host, rng.choice([*dirs, "."]), f"new{rng.randrange(10**6)}").write_bytes(rng.randbytes(30))
    elif action == "remove" and files:
        os.unlink(Path(host, rng.choice(files)))
    elif action == "chmod" and files:
        path = Path(host, rng.choice(files))
        path.chmod(path.stat().st_mode ^ 0o100)
    elif action == "rename" and dirs:
        source = Path(host, rng.choice(dirs))
        source.rename(source.with_name(source.name + "-moved"))
    elif action == "relink":
        link = Path(host, rng.choice([*dirs, "."]), "link")
        if link.is_symlink():
            link.unlink()
        link.symlink_to(f"target{rng.randrange(100)}")
    else:
        Path(host, rng.choice([*dirs, "."]), f"dir{rng.randrange(10**6)}").mkdir()
    return action


def test_reimports_after_random_changes_equal_fresh_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statcache, "RACY_SECONDS", 0.0)
    rng = random.Random(5)
    host = build_host(str(tmp_path / "h"), random_spec(9, entries=150))
    store = LocalStore(str(tmp_path / "s"))
    import_host_tree(store, host)
    for step in range(30):
        # past the file system's timestamp tick, so that every change shows in a
        # ctime (with RACY_SECONDS at 0 nothing else would see it)
        time.sleep(0.02)
        action = _mutate(rng, host)
        time.sleep(0.02)
        fresh = import_host_tree(LocalStore(str(tmp_path / f"fresh{step}")), host)
        assert import_host_tree(LocalStore(str(tmp_path / "s")), host) == fresh, (step, action)
        assert store.check_tree(fresh).complete


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
