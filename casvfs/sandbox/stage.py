"""Staging a tree where a command can run in it, and capturing what it left.

``fuse``: a copy-on-write mount of the digest; capture hashes only the files
written (unmodified subtrees keep their digests). ``hardlink``: an export that
links files from the store where that is safe (as root: clones or copies, so a
write can never reach the store), imported again after the run. ``copy``: an
export of copies. All three give the same digest for the same result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Literal

from casvfs.digest import Digest
from casvfs.directory.casdir import CasDirectory
from casvfs.directory.ingest import import_host_tree
from casvfs.store.base import ContentStore

StageKind = Literal["fuse", "hardlink", "copy"]
STAGES: tuple[StageKind, ...] = ("fuse", "hardlink", "copy")

Capture = Callable[[], Digest]
"""Returns the digest of the staged tree as it is now."""


@contextlib.contextmanager
def staged(
    store: ContentStore, digest: Digest, kind: StageKind, workdir: str
) -> Iterator[tuple[str, Capture]]:
    """The tree *digest* as a writable host directory under *workdir*, and the
    function capturing it; the stage is torn down on exit, whatever happened."""
    if kind not in STAGES:
        raise ValueError(f"a stage is one of {', '.join(STAGES)}, not {kind!r}")
    root = tempfile.mkdtemp(prefix="stage-", dir=workdir)
    try:
        if kind == "fuse":
            from casvfs.fuse import mount  # needs the fuse extra

            with mount(store, digest, root, writable=True) as live:
                yield root, live.get_digest
        else:
            CasDirectory(store, digest).export_files(root, can_link=kind == "hardlink")

            def capture() -> Digest:
                return import_host_tree(store, root)

            yield root, capture
    finally:
        _remove(root)


def _remove(root: str) -> None:
    # a command may have left directories without write permission
    for directory, names, _files in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o755)
    shutil.rmtree(root, ignore_errors=True)
