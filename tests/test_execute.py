"""REAPI Actions run by casvfs: outputs of every kind in the ActionResult, the
local action cache (hits, do_not_cache, outputs kept by gc), the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, LocalStore
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.refs import RefIndex
from casvfs.sandbox import LocalActionCache, execute, put_action
from peers.casd import REPO
from tests.sandbox_roots import minimal_root

SCRIPT = (
    "mkdir -p out/d && echo hi > out/d/f && ln -s d/f out/l && printf '#!/bin/sh\\n' > out/x && "
    "chmod +x out/x && echo file > single && ln -s single link && echo done"
)


@pytest.fixture
def action(tmp_path: Path) -> tuple[LocalStore, Digest]:
    store = LocalStore(tmp_path / "store")
    root = minimal_root(store, tmp_path, programs=("bash", "mkdir", "ln", "chmod"))
    command = ["/bin/sh", "-c", SCRIPT]
    outputs = ["out", "single", "link", "absent"]
    return store, put_action(store, root, command, output_paths=outputs, env={"PATH": "/bin"})


def test_an_action_runs_and_its_result_names_every_output(action: tuple[LocalStore, Digest]) -> None:
    store, digest = action
    done = execute(store, digest, cache=LocalActionCache(store, RefIndex.of_store(store)))
    result = done.result
    assert not done.cached and result.exit_code == 0, done.run.stderr if done.run else ""
    assert store.read_bytes(Digest.from_proto(result.stdout_digest)) == b"done\n"
    (directory,) = result.output_directories
    assert directory.path == "out"
    out = CasDirectory(store, Digest.from_proto(directory.root_directory_digest))
    assert sorted(out.list_relative_paths()) == ["d", "d/f", "l", "x"]
    assert out.stat("x").executable and out.readlink("l") == "d/f"
    tree = pb.Tree.FromString(store.read_bytes(Digest.from_proto(directory.tree_digest)))
    assert tree.root == store.get_directory(Digest.from_proto(directory.root_directory_digest))
    assert len(tree.children) == 1
    assert [(f.path, f.is_executable) for f in result.output_files] == [("single", False)]
    assert [(s.path, s.target) for s in result.output_symlinks] == [("link", "single")]
    assert result.execution_metadata.worker == "casvfs"
    assert result.execution_metadata.execution_completed_timestamp.seconds > 0


def test_the_local_action_cache(action: tuple[LocalStore, Digest], tmp_path: Path) -> None:
    from casvfs.gc import collect

    store, digest = action
    cache = LocalActionCache(store, RefIndex.of_store(store))
    first = execute(store, digest, cache=cache)
    again = execute(store, digest, cache=cache)
    assert again.cached and again.run is None and again.result == first.result
    # the cached outputs are rooted: an aggressive gc keeps them
    collect(store, grace=120)
    assert execute(store, digest, cache=cache).cached
    action_message = pb.Action.FromString(store.read_bytes(digest))
    action_message.do_not_cache = True
    uncached = store.put_bytes(action_message.SerializeToString(deterministic=True))
    assert not execute(store, uncached, cache=cache).cached
    assert not execute(store, uncached, cache=cache).cached


def test_the_execute_command(action: tuple[LocalStore, Digest]) -> None:
    store, digest = action
    base = [sys.executable, "-m", "casvfs.cli", "--store", store.root, "execute", str(digest)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env, check=True)
    answer = json.loads(first.stdout)
    assert answer["cached"] is False and answer["result"]["output_directories"][0]["path"] == "out"
    second = subprocess.run(base, capture_output=True, text=True, env=env, check=True)
    assert second.stdout.startswith("cached: exit 0")


def test_casvfs_execute_agrees_with_buildbox_run(tmp_path: Path) -> None:
    """The same Action run by the real buildbox-run (staged by buildbox-casd) and by
    casvfs execute: same exit code, stdout and output tree, to the digest."""
    from peers.buildbox_run import buildbox_run_binary, run_action, upload_action
    from peers.casd import running_casd
    from tests.remote_servers import require_casd

    require_casd()
    if buildbox_run_binary() is None:
        pytest.fail("buildbox-run is missing from the peers: bash scripts/setup.sh")
    store = LocalStore(tmp_path / "store")
    root = minimal_root(store, tmp_path, programs=("bash", "mkdir", "ln", "chmod"))
    script = SCRIPT + " && echo $GREETING && pwd"
    digest = put_action(
        store, root, ["/bin/sh", "-c", script], output_paths=["out", "single"], working_directory="work",
        env={"PATH": "/bin", "GREETING": "hello"}, directory_format=pb.Command.TREE_AND_DIRECTORY,
    )  # fmt: skip
    with running_casd(tmp_path / "casd") as address:
        upload_action(address, store, digest)
        theirs = pb.ActionResult.FromString(run_action(address, digest, tmp_path / "bbrun"))
    ours = execute(store, digest).result
    assert ours.exit_code == theirs.exit_code == 0
    assert ours.stdout_digest == theirs.stdout_digest
    assert store.read_bytes(Digest.from_proto(ours.stdout_digest)) == b"done\nhello\n/work\n"
    assert [d.path for d in ours.output_directories] == [d.path for d in theirs.output_directories] == ["out"]
    assert (
        ours.output_directories[0].root_directory_digest == theirs.output_directories[0].root_directory_digest
    )
    assert [(f.path, f.digest, f.is_executable) for f in ours.output_files] == [
        (f.path, f.digest, f.is_executable) for f in theirs.output_files
    ]


def test_execute_with_a_remote_caches_in_its_action_cache(tmp_path: Path) -> None:
    """With --remote (BuildGrid with an ActionCache), the outputs are uploaded and
    the result cached there: another machine's execute is a cache hit."""
    from peers.buildgrid import running_buildgrid
    from tests.remote_servers import require_buildgrid

    require_buildgrid()
    store = LocalStore(tmp_path / "store")
    root = minimal_root(store, tmp_path, programs=("bash", "mkdir", "ln", "chmod"))
    command = ["/bin/sh", "-c", SCRIPT]
    digest = put_action(store, root, command, output_paths=["out", "single"], env={"PATH": "/bin"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with running_buildgrid(tmp_path / "bgd", action_cache=True) as server:
        url = f"http://{server.address}"

        def cli(where: LocalStore, *args: str) -> bytes:
            base = [sys.executable, "-m", "casvfs.cli", "--store", where.root, "--remote", url]
            return subprocess.run([*base, *args], env=env, check=True, capture_output=True).stdout

        cli(store, "push", str(root))
        first = json.loads(cli(store, "execute", str(digest), "--json"))
        assert first["cached"] is False
        # another machine: only the Action and Command travel; the result comes from BuildGrid
        other = LocalStore(tmp_path / "other")
        command_digest = Digest.from_proto(pb.Action.FromString(store.read_bytes(digest)).command_digest)
        for blob in (digest, command_digest):
            other.put_bytes(store.read_bytes(blob))
        second = json.loads(cli(other, "execute", str(digest), "--json"))
        assert second == {"cached": True, "result": first["result"]}
        out = second["result"]["output_directories"][0]["root_directory_digest"]
        assert cli(other, "cat", f"{out['hash']}/{out['size_bytes']}", "d/f") == b"hi\n"
