"""FUSE cases: a tree read through a mount (casvfs or buildbox-fuse) or natively."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Sequence

from benchmarks.measure import Row, Sample, shell

MOUNT = "mount + first read"
FIND = "find"
TAR_COLD = "tar | cat (cold)"
TAR_WARM = "tar | cat (warm)"
BIG_READ = "read largest file (dd)"
RSS_STAT = "peak RSS: mount + one read"
RSS_WALK = "peak RSS: full traversal"
CASES = (MOUNT, FIND, TAR_COLD, TAR_WARM, BIG_READ)


def probes(tree: str) -> tuple[str, str]:
    """The first file (to read right after mounting) and the largest file, relative to *tree*."""
    first = largest = ""
    size = -1
    for dirpath, _dirnames, filenames in os.walk(tree):
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            first = first or os.path.relpath(path, tree)
            if os.path.getsize(path) > size:
                size, largest = os.path.getsize(path), os.path.relpath(path, tree)
    if not first:
        raise SystemExit(f"{tree} holds no regular file")
    return first, largest


def peak_rss_mib(pid: int) -> float | None:
    """The peak RSS of a live process."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def served(command: Sequence[str], mountpoint: str, probe: str) -> Iterator[tuple[int, float]]:
    """Start a FUSE server; yield its pid and the seconds until *probe* could be
    read through the mount; unmount at the end."""
    started = time.perf_counter()
    server = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {server.returncode}")
            if os.path.ismount(mountpoint):
                with contextlib.suppress(OSError), open(os.path.join(mountpoint, probe), "rb") as stream:
                    stream.read()
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not mount within 120 s")
            time.sleep(0.002)
        yield server.pid, time.perf_counter() - started
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, check=False)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def read_tree(root: str, largest: str, rows: dict[str, Row]) -> None:
    """find, tar twice and a sequential read of the largest file under *root*
    (times only: the memory that counts is the server's, measured apart)."""

    def timed(command: str) -> Sample:
        return Sample(shell(command, root).seconds)

    rows[FIND].samples.append(timed("find . > /dev/null"))
    # tar skips reading files when it writes to /dev/null itself: pipe through cat
    rows[TAR_COLD].samples.append(timed("tar cf - . | cat > /dev/null"))
    rows[TAR_WARM].samples.append(timed("tar cf - . | cat > /dev/null"))
    rows[BIG_READ].samples.append(timed(f"dd if='{largest}' of=/dev/null bs=1M status=none"))


def measure_mounts(
    tree: str, servers: dict[str, Sequence[str] | None], mountpoint: str, times: int
) -> list[Row]:
    """Every FUSE case for the native tree and each server (None: missing peer),
    *times* rounds after a warm-up round; rows in table order (case, then target)."""
    first, largest = probes(tree)
    targets = ["native", *servers]
    applies = {target: (*CASES, RSS_STAT, RSS_WALK) for target in servers}
    applies["native"] = tuple(case for case in CASES if case != MOUNT)  # no mount, no server
    rows = {
        target: {
            case: Row("FUSE: " + case, target, target == "casvfs", memory=case in (RSS_STAT, RSS_WALK))
            for case in applies[target]
        }
        for target in targets
    }
    for target, command in servers.items():
        if command is None:
            for row in rows[target].values():
                row.missing = "peer not installed"
    for attempt in range(times + 1):
        scratch = {target: {case: Row("", target, False) for case in CASES} for target in targets}
        read_tree(tree, largest, scratch["native"])
        for target, command in servers.items():
            if command is None:
                continue
            with served(command, mountpoint, first) as (pid, mounted):
                scratch[target][MOUNT].samples.append(Sample(mounted))
                after_stat = peak_rss_mib(pid)
                read_tree(mountpoint, largest, scratch[target])
                after_walk = peak_rss_mib(pid)
            if attempt and after_stat is not None and after_walk is not None:
                rows[target][RSS_STAT].samples.append(Sample(0.0, after_stat))
                rows[target][RSS_WALK].samples.append(Sample(0.0, after_walk))
        if attempt == 0:
            continue  # the warm-up round
        for target in targets:
            for case in applies[target]:
                if case in CASES:
                    rows[target][case].samples.extend(scratch[target][case].samples)
    return [
        rows[target][case]
        for case in (*CASES, RSS_STAT, RSS_WALK)
        for target in targets
        if case in rows[target]
    ]
