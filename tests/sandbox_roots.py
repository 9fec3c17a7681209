"""Small input roots for sandbox tests: the host's bash (and any other programs
asked for) with exactly the shared libraries they need, as a tree in a store."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from casvfs import Digest
from casvfs.directory.ingest import import_host_tree
from casvfs.store import ContentStore

_LIBRARY = re.compile(r"(/\S+)")


def minimal_root(
    store: ContentStore,
    workdir: Path,
    programs: tuple[str, ...] = ("bash",),
    extra: dict[str, bytes] | None = None,
) -> Digest:
    """A tree with ``/bin/PROGRAM`` for each of *programs* (``/bin/sh`` being
    bash), their libraries at the paths the loader looks for them, and the
    *extra* files given (path -> content)."""
    root = workdir / "minimal-root"
    for program in programs:
        path = shutil.which(program)
        assert path is not None, f"{program} is not installed"
        _copy(os.path.realpath(path), root / "bin" / program)
        listing = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            found = _LIBRARY.search(line.split("=>")[-1])
            if found:
                _copy(os.path.realpath(found.group(1)), root / found.group(1).lstrip("/"))
    if "bash" in programs and not (root / "bin" / "sh").exists():
        os.symlink("bash", root / "bin" / "sh")
    for name, data in (extra or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return import_host_tree(store, str(root))


def _copy(source: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(source, target)
