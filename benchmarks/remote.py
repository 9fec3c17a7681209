"""Push and pull a tree to and from buildbox-casd on loopback: casvfs's REAPI
client against buildbox-casd's own (a second casd started with ``--cas-remote``,
driven through LocalCAS ``UploadTree`` / ``FetchTree`` / ``FetchMissingBlobs``,
which is how BuildStream moves trees).

    python -m benchmarks.remote [--corpus linux|PATH] [--repeat N] [--json FILE]

Every round uses fresh, empty remotes and local stores, and every case starts
after a ``sync`` with the page cache dropped (when run as root), so that none pays
for another's write-back and none reads from a warmer cache. casvfs runs in this
process (timed around the library call); casd's client runs in the peers'
Python (timed inside that process around the gRPC call), so neither side pays
for interpreter start-up. Prints a table of medians and casvfs's RPC counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import corpora
from casvfs import CasDirectory, Digest, LocalStore
from casvfs.remote import CasClient, LayeredStore, RemoteSpec
from peers.casd import peers_python, running_casd

CASES = ("push", "push again", "pull tree-only", "first byte", "pull full")
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_casd_remote.py"


def _peer(address: str, *arguments: str) -> dict[str, object]:
    python = peers_python()
    if python is None:
        raise RuntimeError("the peers' venv is missing: bash scripts/setup.sh")
    done = subprocess.run(
        [str(python), str(PEER_SCRIPT), address, *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"casd {arguments[0]} failed: {done.stderr.strip()}")
    answer: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return answer


def settle() -> None:
    """Write back dirty pages and drop the page cache (where allowed), so every
    case starts cold: casd's push reads a cache it captured seconds before,
    casvfs's a store it imported rounds before."""
    os.sync()
    with contextlib.suppress(OSError), open("/proc/sys/vm/drop_caches", "w") as control:
        control.write("3\n")


def _seconds(address: str, *arguments: str) -> float:
    settle()
    seconds = _peer(address, *arguments)["seconds"]
    assert isinstance(seconds, float)
    return seconds


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)
    }


def _timed(action: Callable[[], object]) -> float:
    settle()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _largest_file(tree: CasDirectory) -> str:
    return max((p for p in tree.list_relative_paths() if tree.isfile(p)), key=lambda p: tree.stat(p).size)


def one_round(
    origin: LocalStore, root: Digest, host: str, work: Path
) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, int]]]:
    """Every case once for casvfs and for casd; returns seconds per case for each
    and casvfs's RPC counts per case."""
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    calls: dict[str, dict[str, int]] = {}
    with running_casd(work / "remote-casvfs") as remote:
        url = f"http://{remote}"
        pusher = CasClient(RemoteSpec(url, push=True))
        store = LayeredStore(origin, [pusher])
        ours["push"] = _timed(lambda: store.push(root))
        calls["push"] = pusher.calls
        before = pusher.calls
        ours["push again"] = _timed(lambda: store.push(root))
        calls["push again"] = _delta(pusher.calls, before)

        tree_only = LayeredStore(LocalStore(work / "pulled-tree"), [RemoteSpec(url)])
        ours["pull tree-only"] = _timed(lambda: tree_only.pull(root, tree_only=True))
        calls["pull tree-only"] = tree_only.calls
        path = _largest_file(CasDirectory(tree_only.local, root))
        tree = CasDirectory(tree_only, root)

        def first_byte() -> None:
            with tree.open_file(path, mode="rb") as stream:
                stream.read(1)

        ours["first byte"] = _timed(first_byte)
        calls["first byte"] = _delta(tree_only.calls, calls["pull tree-only"])

        full = LayeredStore(LocalStore(work / "pulled-full"), [RemoteSpec(url)])
        ours["pull full"] = _timed(lambda: full.pull(root))
        calls["pull full"] = full.calls

        # casd: its own client cache in front of a fresh remote for the push, and
        # fresh caches in front of casvfs's remote (which holds the tree) for pulls
        # (captured by a casd without a remote: one with a remote uploads as it captures)
        with running_casd(work / "client-push") as client:
            captured = _peer(client, "capture", host)
            assert (captured["hash"], captured["size_bytes"]) == (root.hash, root.size_bytes)
        with (
            running_casd(work / "remote-casd") as casd_remote,
            running_casd(work / "client-push", remote=f"http://{casd_remote}") as client,
        ):
            theirs["push"] = _seconds(client, "upload", str(root))
            theirs["push again"] = _seconds(client, "upload", str(root))
        with running_casd(work / "client-tree", remote=url) as client:
            theirs["pull tree-only"] = _seconds(client, "fetch-tree", str(root))
            node = CasDirectory(origin, root)
            blob = f"{node.file_digest(path)}/{node.stat(path).size}"
            theirs["first byte"] = _seconds(client, "fetch-blob", blob)
        with running_casd(work / "client-full", remote=url) as client:
            theirs["pull full"] = _seconds(client, "fetch-tree", str(root), "--files")
    return ours, theirs, calls


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="linux", help="linux, a synthetic kind, or a host path")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the samples here")
    args = parser.parse_args(argv)
    if args.corpus == "linux":
        host = corpora.linux()
    elif Path(args.corpus).is_dir():
        host = args.corpus
    else:
        host = corpora.synthetic(args.corpus)
    samples: dict[str, dict[str, list[float]]] = {"casvfs": {}, "buildbox-casd": {}}
    counts: dict[str, dict[str, int]] = {}
    os.makedirs(corpora.cache_dir(), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="casvfs-bench-remote-", dir=corpora.cache_dir()) as scratch:
        origin = LocalStore(Path(scratch) / "origin")
        tree = CasDirectory(origin)
        tree.import_files(host)
        root = tree.get_digest()
        print(f"corpus {host}: root {root}", file=sys.stderr)
        for index in range(args.repeat):
            work = Path(scratch) / f"round{index}"
            ours, theirs, counts = one_round(origin, root, host, work)
            for case in CASES:
                samples["casvfs"].setdefault(case, []).append(ours[case])
                samples["buildbox-casd"].setdefault(case, []).append(theirs[case])
            print(f"round {index + 1}: casvfs {ours} casd {theirs}", file=sys.stderr)
            subprocess.run(["rm", "-rf", str(work)], check=True)
    print("| case | casvfs median s | buildbox-casd median s | casvfs / casd | casvfs RPCs |")
    print("|---|---|---|---|---|")
    for case in CASES:
        mine = statistics.median(samples["casvfs"][case])
        peer = statistics.median(samples["buildbox-casd"][case])
        rpcs = ", ".join(f"{name} {count}" for name, count in sorted(counts[case].items())) or "none"
        print(f"| {case} | {mine:.3f} | {peer:.3f} | {mine / peer:.2f} | {rpcs} |")
    if args.json:
        results = {"root": str(root), "samples": samples, "calls": counts}
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
