"""Host programs as a sandbox root: copies of the host's executables with exactly
the shared libraries ``ldd`` lists for them, at the paths the loader looks for
them, for commands whose ``/`` is the tree (bubblewrap roots, buildbox-run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_LIBRARY = re.compile(r"(/\S+)")


def tools_root(root: Path, programs: tuple[str, ...] = ("bash",)) -> Path:
    """Fill the host directory *root* with ``bin/PROGRAM`` for each of *programs*
    (``bin/sh`` being bash) and their libraries; return *root*."""
    for program in programs:
        path = shutil.which(program)
        if path is None:
            raise RuntimeError(f"{program} is not installed")
        _copy(os.path.realpath(path), root / "bin" / program)
        listing = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            found = _LIBRARY.search(line.split("=>")[-1])
            if found:
                _copy(os.path.realpath(found.group(1)), root / found.group(1).lstrip("/"))
    if "bash" in programs and not (root / "bin" / "sh").exists():
        os.symlink("bash", root / "bin" / "sh")
    return root


def _copy(source: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(source, target)
