"""Small input roots for sandbox tests: the host's bash (and any other programs
asked for) with exactly the shared libraries they need, as a tree in a store."""

from __future__ import annotations

from pathlib import Path

from casvfs import Digest
from casvfs.directory.ingest import import_host_tree
from casvfs.store import ContentStore
from peers.host_tools import tools_root


def minimal_root(
    store: ContentStore,
    workdir: Path,
    programs: tuple[str, ...] = ("bash",),
    extra: dict[str, bytes] | None = None,
) -> Digest:
    """A tree with ``/bin/PROGRAM`` for each of *programs* (``/bin/sh`` being
    bash), their libraries at the paths the loader looks for them, and the
    *extra* files given (path -> content)."""
    root = tools_root(workdir / "minimal-root", programs)
    for name, data in (extra or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return import_host_tree(store, str(root))
