"""One casvfs operation, timed inside a fresh process so the suite can read its
peak RSS too.

    python -m benchmarks.task OPERATION ARGS...

Prints one JSON object: ``seconds`` (the operation alone, without the start-up)
and ``digest`` where the operation makes one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable

from casvfs import CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.store import DigestOnlyStore


def _files(root: str) -> list[str]:
    paths = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                paths.append(path)
    return paths


def floor(tree: str) -> str:
    """Read and SHA-256 every file of *tree*, nothing stored: the floor of an import."""
    for path in _files(tree):
        with open(path, "rb", buffering=0) as stream:
            hashlib.sha256(stream.readall()).digest()
    return ""


def import_tree(store: LocalStore, tree: str) -> str:
    """Import a host tree into a local store (cold or again, as the store is)."""
    return str(import_host_tree(store, tree))


def digest_only(tree: str) -> str:
    """The root digest of a host tree, storing nothing."""
    return str(import_host_tree(DigestOnlyStore(), tree))


def graft(store: LocalStore, digest: str) -> str:
    """Import a whole stored tree into another tree by reference, twice nested."""
    target = CasDirectory(store)
    target.open_directory("a/b", create=True).import_files(
        CasDirectory(target.store, Digest.parse(digest)), collect_result=False
    )
    return str(target.get_digest())


def merge(store: LocalStore, first: str, second: str) -> str:
    """Import one stored tree over another (overlapping) one."""
    target = CasDirectory(store, Digest.parse(first))
    target.import_files(CasDirectory(target.store, Digest.parse(second)), collect_result=False)
    return str(target.get_digest())


def list_paths(store: LocalStore, digest: str) -> str:
    """list_relative_paths of a tree loaded from the store for the first time."""
    return str(sum(1 for _ in CasDirectory(store, Digest.parse(digest)).list_relative_paths()))


def export(store: LocalStore, digest: str, target: str, link: str = "") -> str:
    """Export a stored tree into a new host directory, with copies or hard links."""
    # hard links even as root: the case compares with cp -al and casd's StageTree
    tree = CasDirectory(store, Digest.parse(digest))
    tree.export_files(target, can_link=link == "link", hard_links=link == "link")
    return ""


def export_tar(store: LocalStore, digest: str) -> str:
    """export_to_tar of a stored tree into /dev/null."""
    with open(os.devnull, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as archive:
        CasDirectory(store, Digest.parse(digest)).export_to_tar(archive, "")
    return ""


OPERATIONS: dict[str, Callable[..., str]] = {
    "floor": floor,
    "import": import_tree,
    "digest-only": digest_only,
    "graft": graft,
    "merge": merge,
    "list": list_paths,
    "export": export,
    "export-tar": export_tar,
}


def main(argv: list[str]) -> int:
    """Run one operation and print its time (opening the store is not timed)."""
    operation = OPERATIONS[argv[0]]
    args: list[object] = list(argv[1:])
    if argv[0] not in ("floor", "digest-only"):
        args[0] = LocalStore(argv[1])
    started = time.perf_counter()
    digest = operation(*args)
    print(json.dumps({"seconds": time.perf_counter() - started, "digest": digest}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
