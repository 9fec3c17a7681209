"""A host tree read through a casvfs mount, next to the native tree and a
buildbox-fuse mount of the same digest (when the peers are installed), measured
in the same run.

    python -m benchmarks.fuse TREE [--repeat N] [--workdir DIR]

For each target and each repeat: mount (time from starting the server to the
first stat of a file: includes the server's start-up), ``find``, ``tar cf - . |
cat`` on the fresh mount (cold: nothing of the tree in the mount's caches; the
store's objects are in the page cache, as for the native tree) and again (warm);
then the server's peak RSS. The table shows medians, min-max and the ratio to the
native tree.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.core import measure
from casvfs import Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from tests.peer_casd import buildbox_binary, capture_tree, running_casd

CASES = ("mount + first stat", "find", "tar | cat (cold)", "tar | cat (warm)")


def _first_file(tree: str) -> str:
    for dirpath, _dirnames, filenames in os.walk(tree):
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                return os.path.relpath(path, tree)
    raise SystemExit(f"{tree} holds no regular file")


@contextlib.contextmanager
def _served(command: list[str], mountpoint: str, probe: str, timings: list[float]) -> Iterator[int]:
    """Start a FUSE server, time it until *probe* stats, yield its pid, unmount."""
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {server.returncode}")
            if os.path.ismount(mountpoint):
                with contextlib.suppress(OSError):
                    os.stat(os.path.join(mountpoint, probe))
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not mount within 120 s")
            time.sleep(0.005)
        timings.append(time.perf_counter() - started)
        yield server.pid
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, check=False)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _walk_and_read(root: str, results: dict[str, list[float]]) -> None:
    def timed(case: str, command: str) -> None:
        results.setdefault(case, []).extend(measure(case, 1, lambda: None, lambda: _shell(command, root)))

    timed("find", "find . > /dev/null")
    # tar skips reading files when it writes to /dev/null itself: pipe through cat
    timed("tar | cat (cold)", "tar cf - . | cat > /dev/null")
    timed("tar | cat (warm)", "tar cf - . | cat > /dev/null")


def _shell(command: str, cwd: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, check=True)


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
    work = tempfile.mkdtemp(prefix="casvfs-bench-fuse-", dir=args.workdir or os.path.dirname(tree))
    mountpoint = os.path.join(work, "mnt")
    os.mkdir(mountpoint)
    probe = _first_file(tree)
    targets: dict[str, dict[str, list[float]]] = {"native": {}, "casvfs": {}}
    rss: dict[str, list[float]] = {"casvfs": []}
    missing: list[str] = []
    try:
        store_dir = os.path.join(work, "store")
        digest: Digest = import_host_tree(LocalStore(store_dir), tree)
        casvfs = [sys.executable, "-m", "casvfs.cli", "--store", store_dir, "mount", str(digest), mountpoint]
        fuse_binary = buildbox_binary("buildbox-fuse")
        casd_dir = Path(work, "casd")
        casd_dir.mkdir()
        with contextlib.ExitStack() as stack:
            buildbox: list[str] | None = None
            if fuse_binary is None:
                missing.append("buildbox-fuse (bash scripts/setup.sh installs it on x86_64)")
            else:
                address = stack.enter_context(running_casd(casd_dir))
                hash_, size = capture_tree(address, Path(tree))
                if f"{hash_}/{size}" != str(digest):
                    raise SystemExit(f"buildbox-casd captured {hash_}/{size}, casvfs {digest}")
                buildbox = [
                    str(fuse_binary),
                    f"--local={casd_dir / 'casd-cache'}",
                    f"--remote=http://{address}",
                    f"--input-digest-value={digest}",
                    mountpoint,
                ]
                targets["buildbox-fuse"] = {}
                rss["buildbox-fuse"] = []
            for attempt in range(args.repeat):
                print(f"  round {attempt + 1}/{args.repeat}", file=sys.stderr)
                _walk_and_read(tree, targets["native"])
                servers = [("casvfs", casvfs)] + ([("buildbox-fuse", buildbox)] if buildbox else [])
                for name, command in servers:
                    mounts = targets[name].setdefault(CASES[0], [])
                    with _served(command, mountpoint, probe, mounts) as pid:
                        _walk_and_read(mountpoint, targets[name])
                        rss[name].append(_peak_rss_mib(pid))
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)
        shutil.rmtree(work, ignore_errors=True)
    files = sum(len(names) for _dirpath, _dirs, names in os.walk(tree))
    print(f"tree: {tree} ({files} files), root digest {digest}")
    for name in missing:
        print(f"missing peer: {name}")
    print(f"{'case':22} {'target':14} {'median s':>9} {'min-max s':>13} {'x native':>9}")
    for case in CASES:
        native = statistics.median(targets["native"][case]) if case in targets["native"] else None
        for name, results in targets.items():
            if case not in results:
                continue
            median = statistics.median(results[case])
            ratio = f"{median / native:9.2f}" if native else f"{'-':>9}"
            spread = f"{min(results[case]):6.2f}-{max(results[case]):<6.2f}"
            print(f"{case:22} {name:14} {median:9.2f} {spread} {ratio}")
    for name, values in rss.items():
        print(f"peak RSS {name:13} {statistics.median(values):9.0f} MiB (after find and two tars)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
