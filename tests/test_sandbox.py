"""Sandboxes over a digest: real builds give the same tree whether staged by FUSE
or by an export, and the same as building on the host; isolation (host files,
network, PIDs), output paths, exit codes, signals, timeouts, Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvfs import LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.sandbox import run
from peers.casd import REPO
from tests.sandbox_roots import minimal_root
from tests.trees import build_host

STAGES = ["fuse", "hardlink"]
HELLO_C = b'#include <stdio.h>\nint main(void) { puts("hello from the sandbox"); return 0; }\n'
MAKEFILE = (
    b"hello: hello.c\n\tcc -O2 -o hello hello.c\n\nout/stamp: hello\n\tmkdir -p out && ./hello > out/stamp\n"
)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _host_build(tmp_path: Path, files: dict[str, bytes], command: list[str], env: dict[str, str]) -> Path:
    host = tmp_path / "host-build"
    build_host(str(host), files)  # type: ignore[arg-type]
    subprocess.run(command, cwd=host, check=True, env=env, capture_output=True)
    return host


@pytest.mark.parametrize(
    ("files", "command", "env"),
    [
        ({"hello.c": HELLO_C, "Makefile": MAKEFILE}, ["make", "out/stamp"], {}),
        (
            {"pkg": {"__init__.py": b"", "mod.py": b"def f():\n    return 42\n"}},
            ["python3", "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "pkg"],
            {},
        ),
    ],
    ids=["make", "compileall"],
)  # fmt: skip
def test_real_builds_give_one_tree_whatever_the_stage_and_the_host_agrees(
    store: LocalStore, tmp_path: Path, files: dict[str, bytes], command: list[str], env: dict[str, str]
) -> None:
    build_host(str(tmp_path / "src"), files)  # type: ignore[arg-type]
    source = import_host_tree(store, str(tmp_path / "src"))
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", **env}
    digests = set()
    for stage in STAGES:
        result = run(store, source, command, env=environment, stage=stage, root_at="/src", timeout=120)
        assert result.exit_code == 0, result.stderr.decode()
        digests.add(result.digest)
    host = _host_build(tmp_path, files, command, environment)
    assert digests == {import_host_tree(store, str(host))}


def test_git_objects_are_the_same_whatever_the_stage(store: LocalStore, tmp_path: Path) -> None:
    """git's index records inodes and times, so of a commit only the objects are
    comparable: the same, commit id included, from either stage."""
    build_host(str(tmp_path / "src"), {"README": b"a repository built in a sandbox\n"})
    source = import_host_tree(store, str(tmp_path / "src"))
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/tmp", "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@s",
        "GIT_COMMITTER_NAME": "s", "GIT_COMMITTER_EMAIL": "s@s",
        "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z",
    }  # fmt: skip
    script = "git init -q -b main && git add -A && git commit -q -m one && git rev-parse HEAD"
    heads = set()
    objects = set()
    for stage in STAGES:
        result = run(store, source, ["sh", "-c", script], env=env, stage=stage, root_at="/src",
                     output_paths=[".git/objects"])  # fmt: skip
        assert result.ok, result.stderr.decode()
        heads.add(result.stdout.strip())
        objects.add(result.digest)
    assert len(heads) == 1 and len(objects) == 1


def test_the_command_sees_only_its_tree(store: LocalStore, tmp_path: Path) -> None:
    root = minimal_root(store, tmp_path, extra={"data/in.txt": b"inside\n"})
    script = (
        "read line < /data/in.txt; echo $line; "
        "[ -e /etc/hostname ] && echo host-visible || echo no-host; "
        f"[ -e {REPO} ] && echo repo-visible || echo no-repo; "
        "echo pid $$; echo /proc/[0-9]*; echo $(</proc/sys/kernel/hostname)"
    )
    for stage in STAGES:
        result = run(store, root, ["/bin/bash", "-c", script], stage=stage)
        lines = result.stdout.decode().splitlines()
        assert lines[:3] == ["inside", "no-host", "no-repo"], result.stderr
        assert lines[3] in ("pid 1", "pid 2")  # bwrap's init is PID 1 in the namespace
        assert len(lines[4].split()) <= 3  # no host process is visible
        assert lines[5] == "casvfs-sandbox"
        # bubblewrap's mount points are not part of the output
        assert sorted(result.output.list_relative_paths())[0:1] == ["bin"]
        assert not result.output.exists("proc") and not result.output.exists("tmp")


def test_no_network_unless_asked(store: LocalStore, tmp_path: Path) -> None:
    root = minimal_root(store, tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        probe = ["/bin/bash", "-c", f"echo > /dev/tcp/127.0.0.1/{port} && echo reached"]
        assert b"reached" not in run(store, root, probe).stdout
        assert run(store, root, probe, network=True).stdout == b"reached\n"


def test_outputs_exit_codes_signals_and_timeouts(store: LocalStore, tmp_path: Path) -> None:
    root = minimal_root(store, tmp_path)
    kept = run(
        store, root, ["/bin/bash", "-c", "echo x > a; echo y > b; echo z > c"], output_paths=["a", "c"]
    )
    assert sorted(kept.output.list_relative_paths()) == ["a", "c"]
    assert kept.output.open_file("c", mode="rb").read() == b"z\n"
    assert run(store, root, ["/bin/bash", "-c", "echo out; echo err >&2; exit 3"]).exit_code == 3
    both = run(store, root, ["/bin/bash", "-c", "echo out; echo err >&2"])
    assert (both.stdout, both.stderr) == (b"out\n", b"err\n")
    assert store.read_bytes(both.stdout_digest) == b"out\n"
    killed = run(store, root, ["/bin/bash", "-c", "kill -TERM $$"])
    assert (killed.exit_code, killed.signal) == (None, signal.SIGTERM)
    started = time.monotonic()
    slow = run(store, root, ["/bin/bash", "-c", "while :; do :; done"], timeout=1)
    assert slow.timed_out and time.monotonic() - started < 10


CTRL_C = r"""
import sys
from pathlib import Path
from casvfs import LocalStore
from casvfs.sandbox import run
from tests.sandbox_roots import minimal_root
store = LocalStore(sys.argv[1])
root = minimal_root(store, Path(sys.argv[2]))
print("running", flush=True)
run(store, root, ["/bin/bash", "-c", "while :; do :; done"], stage="fuse")
"""


def test_ctrl_c_leaves_no_mount_behind(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, str(tmp_path / "store"), str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline() == "running\n"
    time.sleep(1.5)  # staged and running
    assert "casvfs-run-" in Path("/proc/self/mounts").read_text()
    child.send_signal(signal.SIGINT)
    child.wait(timeout=30)
    assert "casvfs-run-" not in Path("/proc/self/mounts").read_text()


def test_the_run_command_streams_prints_and_exits_with_the_status(store: LocalStore, tmp_path: Path) -> None:
    from casvfs.refs import RefIndex

    root = minimal_root(store, tmp_path)
    base = [sys.executable, "-m", "casvfs.cli", "--store", str(store.root), "run", str(root)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = "echo made > f; echo hi; exit 4"
    done = subprocess.run([*base, "--ref", "built", "--", "/bin/bash", "-c", script],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert done.returncode == 4
    hi, digest = done.stdout.splitlines()
    assert hi == "hi"
    assert str(RefIndex.of_store(store).get("built").digest) == digest
    done = subprocess.run([*base, "--timeout", "1", "--", "/bin/bash", "-c", "while :; do :; done"],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert done.returncode == 124 and "ran out of time" in done.stderr


def test_without_bubblewrap_run_refuses_unless_told_not_to_isolate(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casvfs.sandbox import REASON_NO_SANDBOX, SandboxError

    root = minimal_root(store, tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(SandboxError, match="apt-get install bubblewrap") as caught:
        run(store, root, ["/bin/bash", "-c", "true"])
    assert caught.value.reason == REASON_NO_SANDBOX
    plain = run(store, root, ["/bin/sh", "-c", "echo plain > made"], isolate=False, stage="hardlink",
                env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert plain.ok and plain.output.open_file("made", mode="rb").read() == b"plain\n"
