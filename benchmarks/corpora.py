"""The trees the benchmarks run on: the Linux 6.1 sources and seeded synthetic trees.

Every corpus is made once into a cache directory (``$CASVFS_BENCH_DIR``, else
``/var/tmp/casvfs-bench``) and reused; synthetic trees are seeded, so every run
sees the same bytes.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable

LINUX_TARBALL = "/usr/src/linux-source-6.1.tar.xz"
LINUX_PACKAGE = "linux-source-6.1"


def cache_dir() -> str:
    """Where corpora are unpacked or generated."""
    return os.environ.get("CASVFS_BENCH_DIR", "/var/tmp/casvfs-bench")


def linux(root: str | None = None) -> str:
    """The Linux 6.1 source tree (78,579 files), installed with apt and unpacked
    on first use."""
    root = root or cache_dir()
    tree = os.path.join(root, "linux-source-6.1")
    if os.path.isfile(os.path.join(tree, "Makefile")):
        return tree
    if not os.path.exists(LINUX_TARBALL):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", LINUX_PACKAGE],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    partial = tree + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    with tarfile.open(LINUX_TARBALL) as archive:
        archive.extractall(partial, filter="tar")
    os.rename(os.path.join(partial, "linux-source-6.1"), tree)
    shutil.rmtree(partial)
    return tree


def _write(path: str, data: bytes, executable: bool = False) -> None:
    with open(path, "wb") as stream:
        stream.write(data)
    if executable:
        os.chmod(path, 0o755)


def _tiny(root: str, rng: random.Random, scale: float) -> None:
    """Many tiny files in 100-entry directories, a few executables and symlinks."""
    for index in range(int(40_000 * scale)):
        directory = os.path.join(root, f"d{index // 10_000:02}", f"s{index // 100 % 100:02}")
        os.makedirs(directory, exist_ok=True)
        _write(os.path.join(directory, f"f{index}"), rng.randbytes(rng.randrange(0, 512)), index % 50 == 0)
        if index % 97 == 0:
            os.symlink(f"f{index}", os.path.join(directory, f"l{index}"))


def _huge(root: str, rng: random.Random, scale: float) -> None:
    """A few large files."""
    for index in range(4):
        size = int((256 << 20) * scale)
        with open(os.path.join(root, f"blob{index}"), "wb") as stream:
            block = rng.randbytes(1 << 20)
            for offset in range(0, size, len(block)):
                stream.write(block[: size - offset] if size - offset < len(block) else block)
                block = block[1:] + block[:1]  # no two blocks alike


def _deep(root: str, rng: random.Random, scale: float) -> None:
    """Chains of directories hundreds deep, a file at every level."""
    for chain in range(max(1, int(8 * scale))):
        path = os.path.join(root, f"chain{chain}")
        for level in range(200):
            path = os.path.join(path, f"l{level}")
            os.makedirs(path)
            _write(os.path.join(path, "file"), rng.randbytes(64))


def _wide(root: str, rng: random.Random, scale: float) -> None:
    """One directory of 50,000 entries: files, some executables, some symlinks."""
    directory = os.path.join(root, "wide")
    os.makedirs(directory)
    for index in range(int(50_000 * scale)):
        path = os.path.join(directory, f"entry{index:05}")
        if index % 10 == 9:
            os.symlink(f"entry{index - 1:05}", path)
        else:
            _write(path, rng.randbytes(rng.randrange(0, 256)), index % 7 == 0)


def _mixed(root: str, rng: random.Random, scale: float) -> None:
    """A bit of everything, small: the corpus of ``--quick``."""
    for name, make, part in (("tiny", _tiny, 0.01), ("deep", _deep, 0.1), ("wide", _wide, 0.01)):
        os.makedirs(os.path.join(root, name))
        make(os.path.join(root, name), rng, part * scale)
    big = os.path.join(root, "big")
    os.makedirs(big)
    _huge(big, rng, 0.02 * scale)


SYNTHETIC: dict[str, Callable[[str, random.Random, float], None]] = {
    "tiny": _tiny,
    "huge": _huge,
    "deep": _deep,
    "wide": _wide,
    "mixed": _mixed,
}


def synthetic(kind: str, root: str | None = None, *, seed: int = 20261125, scale: float = 1.0) -> str:
    """The synthetic tree *kind* (one of :data:`SYNTHETIC`), generated on first use."""
    root = root or cache_dir()
    tree = os.path.join(root, f"synthetic-{kind}-{seed}-{scale:g}")
    if os.path.exists(tree + ".complete"):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    SYNTHETIC[kind](tree, random.Random(f"{kind}-{seed}"), scale)
    _write(tree + ".complete", b"")  # beside the tree, not in it
    return tree


def modified_copy(tree: str, root: str | None = None, *, seed: int = 7) -> str:
    """A copy of *tree* with about 1 % of its files changed and a few added: the
    other side of the merge benchmark."""
    root = root or cache_dir()
    copy = os.path.join(root, os.path.basename(tree) + "-modified")
    if os.path.exists(copy + ".complete"):
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    subprocess.run(["cp", "-a", tree, copy], check=True)
    rng = random.Random(seed)
    for dirpath, _dirnames, filenames in os.walk(copy):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and rng.random() < 0.01:
                _write(path, rng.randbytes(rng.randrange(1, 4096)))
        if rng.random() < 0.01:
            _write(os.path.join(dirpath, "added-by-benchmark"), rng.randbytes(100))
    _write(copy + ".complete", b"")
    return copy
