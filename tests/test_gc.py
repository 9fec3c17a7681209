"""Garbage collection: roots kept (references and what they reference, live
mounts, recent use), the rest removed, quotas, dry runs, and safety beside
processes importing at the same time."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvfs import ARBITRARY_TIMESTAMP, CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.gc import MIN_GRACE, collect, store_stats
from casvfs.refs import RefIndex, utc_now
from peers.casd import REPO
from tests.trees import build_host

AGE = 7200.0


def _age(store: LocalStore, seconds: float = AGE) -> None:
    """Make every object, and every import (which roots its tree through the
    grace period), look last used *seconds* ago."""
    when = time.time() - seconds
    for relative, _name in store.iter_objects():
        os.utime(os.path.join(store.root, relative), (when, ARBITRARY_TIMESTAMP))
    _age_imports(store, seconds)


def _age_imports(store: LocalStore, seconds: float = AGE) -> None:
    store.stat_cache().backdate_imports(seconds)


def _tree(store: LocalStore, tmp_path: Path, name: str, files: dict[str, bytes]) -> Digest:
    build_host(str(tmp_path / name), files)  # type: ignore[arg-type]
    return import_host_tree(store, str(tmp_path / name))


def _complete(store: LocalStore, digest: Digest) -> bool:
    return store.check_tree(digest).complete


def test_references_are_kept_and_the_rest_goes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    index = RefIndex.of_store(store)
    kept = _tree(store, tmp_path, "kept", {"shared": b"both have it", "only-kept": b"k" * 100})
    lost = _tree(store, tmp_path, "lost", {"shared": b"both have it", "only-lost": b"l" * 100})
    log = store.put_bytes(b"a build log")
    extra = _tree(store, tmp_path, "extra", {"x": b"referenced tree"})
    index.set("release", kept, references_blobs=[log], references_directories=[extra], store=store)
    _age(store)
    dry = collect(store, dry_run=True)
    assert dry.removed == 2 and dry.freed_bytes > 100  # lost's root and only-lost
    assert _complete(store, lost)
    assert collect(store).kept_young == 2  # that check read them: recently used now
    _age(store)
    report = collect(store)
    assert (report.removed, report.roots, report.kept_young) == (2, 1, 0)
    assert _complete(store, kept) and _complete(store, extra) and store.has(log)
    assert not store.has(lost) and store.has(
        Digest.parse(CasDirectory(store, kept).file_digest("shared") + "/12")
    )
    assert collect(store).removed == 0


def test_recent_use_and_expiry(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    index = RefIndex.of_store(store)
    young = _tree(store, tmp_path, "young", {"f": b"just imported"})
    assert collect(store, grace=MIN_GRACE).kept_young == 2
    assert _complete(store, young)
    index.set("soon-gone", young, expire_at=utc_now())
    _age(store)
    assert collect(store).removed == 2  # an expired reference roots nothing
    # reading an object refreshes its use
    again = _tree(store, tmp_path, "again", {"g": b"read later"})
    _age(store)
    CasDirectory(store, again).open_file("g", mode="rb").read()
    store.has(again)
    assert collect(store).removed == 0
    with pytest.raises(ValueError, match="grace"):
        collect(store, grace=1)


def test_a_quota_removes_least_recently_used_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    trees = [_tree(store, tmp_path, f"t{i}", {"f": bytes([i]) * 10_000}) for i in range(4)]
    for age, tree in zip((4, 3, 2, 1), trees, strict=True):
        for digest in store.tree_blobs(tree, directories=True):
            os.utime(store.object_path(digest), (time.time() - age * AGE, ARBITRARY_TIMESTAMP))
    _age_imports(store)
    total = store_stats(store).stored_bytes
    assert collect(store, quota_high=total + 1).removed == 0  # under the high mark: nothing
    report = collect(store, quota_high=total - 1, quota_low=total - 15_000)
    assert not store.has(trees[0]) and not store.has(trees[1])  # the two oldest
    assert _complete(store, trees[2]) and _complete(store, trees[3])
    assert report.removed == 4


def test_a_live_mount_roots_its_tree(tmp_path: Path, mountpoint: Path) -> None:
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    mounted = _tree(store, tmp_path, "m", {"f": b"mounted, named by nothing"})
    _age(store)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "casvfs.cli", "--store", str(store_dir)]
    subprocess.run([*base, "mount", str(mounted), str(mountpoint), "--background"], check=True, env=env)
    try:
        assert collect(store).removed == 0
        assert (mountpoint / "f").read_bytes() == b"mounted, named by nothing"
    finally:
        subprocess.run([*base, "umount", str(mountpoint)], check=True, env=env, capture_output=True)
    deadline = time.monotonic() + 10
    while store.live_roots().live() and time.monotonic() < deadline:
        time.sleep(0.1)  # the server releases its roots as it exits
    _age(store)
    assert collect(store).removed == 2


IMPORTER = r"""
import os, sys, time
from casvfs import LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.refs import RefIndex
store = LocalStore(sys.argv[1])
index = RefIndex.of_store(store)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
for source in sys.argv[3:]:
    digest = import_host_tree(store, source)
    index.set(os.path.basename(source), digest, store=store)
"""


def test_gc_in_a_loop_beside_three_importing_processes_keeps_every_reference_complete(
    tmp_path: Path, mountpoint: Path
) -> None:
    """The dangerous case: old unrooted objects that the importers deduplicate
    against while gc removes old unrooted objects (each import reuses content
    already in the store, unrooted and last used two hours ago), and a mount of
    an old unrooted tree read all along."""
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    rng = random.Random(7)
    sources: list[list[str]] = [[] for _ in range(3)]
    for n in range(3):
        for r in range(8):
            files = {f"d{i}": {f"f{j}": rng.randbytes(rng.randrange(10, 2000)) for j in range(10)}
                     for i in range(6)}  # fmt: skip
            source = tmp_path / f"src{n}-{r}"
            build_host(str(source), files)  # type: ignore[arg-type]
            import_host_tree(store, str(source))
            sources[n].append(str(source))
    build_host(str(tmp_path / "mounted"), {f"m{i}": rng.randbytes(500) for i in range(40)})
    mounted = import_host_tree(store, str(tmp_path / "mounted"))
    _age(store)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "casvfs.cli", "--store", str(store_dir)]
    subprocess.run([*cli, "mount", str(mounted), str(mountpoint), "--background"], check=True, env=env)
    workers = [
        subprocess.Popen([sys.executable, "-c", IMPORTER, str(store_dir), str(go), *mine], env=env)
        for mine in sources
    ]
    time.sleep(1.0)  # the importers are up, waiting
    go.touch()
    rounds = 0
    try:
        while any(worker.poll() is None for worker in workers) or rounds < 3:
            collect(LocalStore(store_dir), grace=MIN_GRACE)
            name = f"m{rounds % 40}"
            assert (mountpoint / name).read_bytes() == (tmp_path / "mounted" / name).read_bytes()
            rounds += 1
        assert _complete(store, mounted)
    finally:
        subprocess.run([*cli, "umount", str(mountpoint)], env=env, capture_output=True, check=False)
    assert all(worker.wait() == 0 for worker in workers)
    refs = RefIndex.of_store(store).by_prefix()
    assert len(refs) == 24
    for ref in refs:
        assert _complete(store, ref.digest), ref.uri
    assert store.fsck().corrupt == []


def test_any_sequence_of_imports_refs_and_gc_leaves_every_reference_complete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    index = RefIndex.of_store(store)
    rng = random.Random(11)
    pool = [rng.randbytes(rng.randrange(1, 500)) for _ in range(12)]
    names: list[str] = []
    for step in range(40):
        action = rng.choice(["import", "import", "rm", "gc", "age"])
        if action == "import":
            files = {f"f{i}": rng.choice(pool) for i in range(rng.randrange(1, 5))}
            digest = _tree(store, tmp_path, f"s{step}", files)
            names.append(f"r{step}")
            index.set(names[-1], digest, store=store)
        elif action == "rm" and names:
            index.remove(names.pop(rng.randrange(len(names))))
        elif action == "age":
            _age(store)
        else:
            collect(store)
        for ref in index.by_prefix():
            assert _complete(store, ref.digest), (step, ref.uri)


def test_gc_and_stats_commands(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    kept = _tree(store, tmp_path, "a", {"f": b"kept"})
    _tree(store, tmp_path, "b", {"g": b"lost"})
    RefIndex.of_store(store).set("a", kept)
    _age(store)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def casvfs(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "casvfs.cli", "--store", str(store.root), *args],
                              capture_output=True, text=True, env=env, check=True)  # fmt: skip
        return done.stdout

    stats = json.loads(casvfs("stats", "--json"))
    assert (stats["objects"], stats["live_refs"], stats["trees"]) == (4, 1, 1)
    assert stats["reclaimable_bytes"] > 0
    assert "would remove 2 of 4 objects" in casvfs("gc", "--dry-run")
    report = json.loads(casvfs("gc", "--json"))
    assert report["removed"] == 2 and report["reachable"] == 2
    assert json.loads(casvfs("stats", "--json"))["reclaimable_bytes"] == 0
