"""Test trees: fixed specs, seeded random trees, and snapshots through the public API."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Union

from casvfs import Directory, FileType


@dataclass(frozen=True)
class Exe:
    """An executable file."""

    content: bytes


@dataclass(frozen=True)
class Link:
    """A symlink."""

    target: str


Spec = dict[str, Union[bytes, Exe, Link, "Spec"]]


def build_host(root: str, spec: Spec) -> str:
    """Create *spec* under the host directory *root* (made if missing)."""
    os.makedirs(root, exist_ok=True)
    for name, value in spec.items():
        path = os.path.join(root, name)
        if isinstance(value, dict):
            build_host(path, value)
        elif isinstance(value, Link):
            os.symlink(value.target, path)
        else:
            data = value.content if isinstance(value, Exe) else value
            with open(path, "wb") as stream:
                stream.write(data)
            os.chmod(path, 0o755 if isinstance(value, Exe) else 0o644)
    return root


def random_spec(seed: int, *, entries: int = 60, max_depth: int = 4) -> Spec:
    """A seeded random tree: files (some executable, some empty, some shared),
    directories (some empty) and symlinks: relative, absolute, dangling and
    escaping the tree with ``../../..``."""
    rng = random.Random(seed)
    root: Spec = {}
    dirs: list[tuple[Spec, int, str]] = [(root, 0, "")]
    contents = [b"", b"shared\n", bytes(rng.randrange(256) for _ in range(300))]
    for index in range(entries):
        parent, depth, prefix = rng.choice(dirs)
        name = f"{rng.choice(['a', 'b', 'c', 'd', 'x'])}{index}"
        if rng.random() < 0.05:
            name = "é-ü " + name  # non-ASCII and spaces
        roll = rng.random()
        if roll < 0.25 and depth < max_depth:
            child: Spec = {}
            parent[name] = child
            dirs.append((child, depth + 1, f"{prefix}{name}/"))
        elif roll < 0.45:
            parent[name] = Link(
                rng.choice(
                    [
                        "../" * depth + "a0",
                        "/etc/passwd",
                        "/" + rng.choice(["a1", "b2", "c3"]),
                        "dangling-" + str(index),
                        "../../../../outside",
                        ".",
                        name,  # a loop onto itself
                    ]
                )
            )
        else:
            data = rng.choice(contents) if rng.random() < 0.3 else os.urandom(rng.randrange(1, 5000))
            parent[name] = Exe(data) if rng.random() < 0.2 else data
    return root


Entry = tuple[str, FileType, bool, int, str]


def snapshot(directory: Directory) -> list[Entry]:
    """Every path with its type, executable bit, size and content digest or
    symlink target, in list order, read only through the public API."""
    result: list[Entry] = []
    for path in directory.list_relative_paths():
        stat = directory.stat(path)
        if stat.file_type is FileType.REGULAR_FILE:
            detail = directory.file_digest(path)
        elif stat.file_type is FileType.SYMLINK:
            detail = directory.readlink(path)
        else:
            detail = ""
        result.append((path, stat.file_type, stat.executable, stat.size, detail))
    return result


def host_snapshot(root: str) -> list[tuple[str, str, int, str]]:
    """Every path under a host directory with kind, permission bits and content or
    target, sorted; read with ``os`` only, to check what an export wrote."""
    result = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, root)
            st = os.lstat(path)
            if os.path.islink(path):
                result.append((relative, "link", 0, os.readlink(path)))
            elif os.path.isdir(path):
                result.append((relative, "dir", 0, ""))
            else:
                with open(path, "rb") as stream:
                    result.append((relative, "file", st.st_mode & 0o111, stream.read().hex()))
    return sorted(result)
