"""What verifying reads costs: export, tar and a FUSE tar of one stored tree, with
``LocalStore(verify_reads=True)`` (the default) and ``False`` alternating in one
run, so both see the same machine and the same caches.

    python -m benchmarks.verify [--corpus linux|PATH] [--repeat N] [--json FILE]

Each sample runs after a warm-up of the same case, so both sides read a warm page
cache: the difference is the hashing, not the disk. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable

from benchmarks import corpora
from casvfs import CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree

CASES = ("export", "export_to_tar", "FUSE tar | cat")


def _export(store: LocalStore, digest: Digest, work: str) -> None:
    target = os.path.join(work, "out")
    shutil.rmtree(target, ignore_errors=True)
    CasDirectory(store, digest).export_files(target)


def _tar(store: LocalStore, digest: Digest, work: str) -> None:
    with open(os.devnull, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as archive:
        CasDirectory(store, digest).export_to_tar(archive, "")


def _fuse_tar(store: LocalStore, digest: Digest, work: str) -> None:
    from casvfs.fuse import mount  # needs the fuse extra

    mountpoint = os.path.join(work, "mnt")
    os.makedirs(mountpoint, exist_ok=True)
    with mount(store, digest, mountpoint):
        command = ["bash", "-o", "pipefail", "-c", "tar cf - . | cat > /dev/null"]
        subprocess.run(command, cwd=mountpoint, check=True)


RUNNERS: dict[str, Callable[[LocalStore, Digest, str], None]] = {
    "export": _export,
    "export_to_tar": _tar,
    "FUSE tar | cat": _fuse_tar,
}


def measure(tree: str, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per case and setting, samples interleaved."""
    work = tempfile.mkdtemp(prefix="casvfs-verify-")
    try:
        root = os.path.join(work, "store")
        digest = import_host_tree(LocalStore(root), tree)
        stores = {"verified": LocalStore(root), "unverified": LocalStore(root, verify_reads=False)}
        results: dict[str, dict[str, list[float]]] = {case: {name: [] for name in stores} for case in CASES}
        for case in CASES:
            runner = RUNNERS[case]
            for store in stores.values():
                runner(store, digest, work)  # warm-up
            for _ in range(repeat):
                for name, store in stores.items():
                    started = time.perf_counter()
                    runner(store, digest, work)
                    results[case][name].append(time.perf_counter() - started)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    """Run and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verify")
    parser.add_argument("--corpus", default="linux", help="linux, or a host directory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the samples here")
    args = parser.parse_args()
    tree = corpora.linux() if args.corpus == "linux" else args.corpus
    results = measure(tree, args.repeat)
    print(f"tree: {tree}; medians of {args.repeat}, warm page cache, verified vs not in one run")
    print(f"{'case':18} {'unverified':>12} {'verified':>12} {'ratio':>7}")
    for case, samples in results.items():
        off, on = statistics.median(samples["unverified"]), statistics.median(samples["verified"])
        print(f"{case:18} {off:10.3f} s {on:10.3f} s {on / off:7.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(results, stream, indent=2)


if __name__ == "__main__":
    main()
