"""Import, re-import and export of one host tree, next to cp -a, cp -al, a plain
Python read+SHA-256 of the same files and buildbox-casd capturing the same tree
(when the peers are installed), all measured in the same run.

    python -m benchmarks.core TREE [--repeat N] [--workdir DIR]

Every case runs --repeat times (default 3); the table shows the median, min-max
and the ratio to the read+SHA-256 floor. Cold imports start from an empty store;
the page cache is warm for every case (the same tree is read by each), so the
numbers compare the tools, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from casvfs import CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree


def _files(root: str) -> list[str]:
    paths = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                paths.append(path)
    return paths


def read_and_hash(paths: list[str]) -> None:
    """The floor: read every file and SHA-256 it, nothing stored."""
    for path in paths:
        with open(path, "rb", buffering=0) as stream:
            hashlib.sha256(stream.readall()).digest()


def measure(label: str, repeat: int, setup: Callable[[], None], action: Callable[[], object]) -> list[float]:
    """Run *setup* (untimed) then *action* (timed) *repeat* times."""
    times = []
    for _ in range(repeat):
        setup()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    print(f"  measured {label}: {statistics.median(times):.2f}s", file=sys.stderr)
    return times


def _measure_casd(tree: str, work: str, repeat: int, results: dict[str, list[float]]) -> str | None:
    """Time buildbox-casd's CaptureTree of *tree* (cold: a new cache each time, and
    again on a warm cache); return its root digest, or None if casd is missing."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pathlib import Path

    from tests.peer_casd import capture_tree, casd_binary, running_casd

    if casd_binary() is None:
        return None
    found: list[str] = []
    cold: list[float] = []
    for attempt in range(repeat):
        casd_dir = Path(work, f"casd-{attempt}")
        casd_dir.mkdir()
        with running_casd(casd_dir) as address:
            started = time.perf_counter()
            hash_, size = capture_tree(address, Path(tree))
            cold.append(time.perf_counter() - started)
            if attempt == repeat - 1:
                results["buildbox-casd capture (cold)"] = cold
                results["buildbox-casd capture (again)"] = measure(
                    "casd again", repeat, lambda: None, lambda a=address: capture_tree(a, Path(tree))
                )
        shutil.rmtree(casd_dir, ignore_errors=True)
        found.append(f"{hash_}/{size}")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tree")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch space on the tree's filesystem")
    args = parser.parse_args(argv)
    tree = os.path.abspath(args.tree)
    work = tempfile.mkdtemp(prefix="casvfs-bench-", dir=args.workdir or os.path.dirname(tree))
    store_dir = os.path.join(work, "store")
    out = os.path.join(work, "out")
    paths = _files(tree)
    results: dict[str, list[float]] = {}
    digest: list[Digest] = []

    def fresh_store() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)

    def clean_out() -> None:
        shutil.rmtree(out, ignore_errors=True)

    def nothing() -> None:
        pass

    try:
        results["python read+sha256 (floor)"] = measure(
            "floor", args.repeat, nothing, lambda: read_and_hash(paths)
        )
        results["casvfs import (cold)"] = measure(
            "import",
            args.repeat,
            fresh_store,
            lambda: digest.append(import_host_tree(LocalStore(store_dir), tree)),
        )
        results["casvfs re-import (unchanged)"] = measure(
            "re-import", args.repeat, nothing, lambda: import_host_tree(LocalStore(store_dir), tree)
        )
        casd_digest = _measure_casd(tree, work, args.repeat, results)
        root = CasDirectory(LocalStore(store_dir), digest[-1])
        results["casvfs export (copies)"] = measure(
            "export", args.repeat, clean_out, lambda: CasDirectory(root.store, digest[-1]).export_files(out)
        )
        results["casvfs export --link"] = measure(
            "export --link",
            args.repeat,
            clean_out,
            lambda: CasDirectory(root.store, digest[-1]).export_files(out, can_link=True),
        )
        results["cp -a"] = measure(
            "cp -a", args.repeat, clean_out, lambda: subprocess.run(["cp", "-a", tree, out], check=True)
        )
        results["cp -al"] = measure(
            "cp -al", args.repeat, clean_out, lambda: subprocess.run(["cp", "-al", tree, out], check=True)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(results["python read+sha256 (floor)"])
    print(f"tree: {tree} ({len(paths)} files), root digest {digest[-1]}")
    if casd_digest is None:
        print("buildbox-casd: missing (bash scripts/setup.sh installs it on x86_64)")
    else:
        verdict = "agrees" if casd_digest == str(digest[-1]) else "DIFFERS"
        print(f"buildbox-casd root digest {casd_digest}: {verdict}")
    print(f"{'case':32} {'median s':>9} {'min-max s':>13} {'x floor':>8}")
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:32} {median:9.2f} {min(times):6.2f}-{max(times):<6.2f} {median / floor:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
