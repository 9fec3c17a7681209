"""Running a command over a tree digest: stage the tree, run the command in it
isolated by bubblewrap, capture what it left as a new tree.

The tree is the command's ``/`` (``root_at="/"``: it sees nothing else), or is
mounted at a path inside a read-only view of the host's system directories
(``/usr``, ``/bin``, ``/lib*``, ``/sbin``, ``/etc``), for commands that need the
host's tools. Either way the command gets fresh mount, PID, IPC, UTS, cgroup
and (unless *network*) network namespaces, its own ``/proc``, a minimal
``/dev`` and an empty ``/tmp``; its environment is exactly *env*.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from casvfs.digest import Digest
from casvfs.directory.casdir import CasDirectory
from casvfs.errors import CasvfsError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.sandbox.stage import StageKind, staged
from casvfs.store.base import ContentStore
from casvfs.tree import FileType, Node, directory_to_proto, read_directory

REASON_NO_SANDBOX = "no-sandbox"
HOST_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc")
"""What a command mounted at a path sees of the host (read-only)."""
_MOUNTPOINTS = ("proc", "dev", "tmp")
DEFAULT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/tmp", "LANG": "C.UTF-8"}


class SandboxError(CasvfsError):
    """A sandbox could not be set up (reason ``no-sandbox``: bubblewrap is
    missing) or torn down."""


@dataclass(frozen=True)
class RunResult:
    """What a command did: how it ended, what it printed, the tree it left."""

    exit_code: int | None
    """The exit status, or None if a signal ended it."""
    signal: int | None
    """The signal that ended it, if one did."""
    timed_out: bool
    stdout: bytes
    stderr: bytes
    stdout_digest: Digest
    stderr_digest: Digest
    output: CasDirectory
    """The output tree (only *output_paths*, if given)."""
    stage_seconds: float
    run_seconds: float
    capture_seconds: float

    @property
    def digest(self) -> Digest:
        """The output tree's digest."""
        return self.output.get_digest()

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_code == 0


def bwrap_command(
    root: str,
    argv: Sequence[str],
    *,
    cwd: str = "",
    env: Mapping[str, str],
    network: bool = False,
    root_at: str = "/",
) -> list[str]:
    """The bubblewrap command line running *argv* in the host directory *root*
    (see the module's text)."""
    if not argv:
        raise ValueError("no command to run")
    if not root_at.startswith("/"):
        raise ValueError(f"the tree is mounted at an absolute path, not {root_at!r}")
    command = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all", "--hostname", "casvfs-sandbox"]
    if network:
        command.append("--share-net")
    if root_at == "/":
        command += ["--bind", root, "/"]
    else:
        for path in HOST_SYSTEM:
            if os.path.lexists(path):
                command += ["--ro-bind", path, path]
        command += ["--bind", root, root_at]
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    command += ["--chdir", posixpath.normpath(posixpath.join(root_at, cwd))]
    command.append("--clearenv")
    for name, value in env.items():
        command += ["--setenv", name, value]
    return [*command, "--", *argv]


def _pump(source: IO[bytes], sink: IO[bytes], echo: IO[bytes] | None) -> None:
    while chunk := source.read1(1 << 16):  # type: ignore[attr-defined]
        sink.write(chunk)
        if echo is not None:
            echo.write(chunk)
            echo.flush()


def _execute(
    command: list[str],
    *,
    cwd: str,
    env: Mapping[str, str] | None,
    workdir: str,
    timeout: float | None,
    stream: bool,
    isolate_codes: bool,
) -> tuple[int | None, int | None, bool, str, str]:
    """Run *command*; ``(exit code, signal, timed out, stdout file, stderr file)``.
    The command's process group is killed on a timeout and on any exception
    (Ctrl-C included)."""
    out_path, err_path = os.path.join(workdir, "stdout"), os.path.join(workdir, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(process.stdout, out, sys.stdout.buffer if stream else None)),
            threading.Thread(target=_pump, args=(process.stderr, err, sys.stderr.buffer if stream else None)),
        ]
        for pump in pumps:
            pump.start()
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BaseException:  # Ctrl-C: the command goes too, and the stage after it
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for pump in pumps:
                pump.join()
    code = process.returncode
    if isolate_codes and code > 128:
        # bubblewrap reports a command killed by signal N as 128 + N, as a shell does
        # (an exit(137) looks the same; nothing outside the sandbox can tell them apart)
        return None, code - 128, timed_out, out_path, err_path
    return (code if code >= 0 else None), (-code if code < 0 else None), timed_out, out_path, err_path


def _only(store: ContentStore, root: Digest, paths: Sequence[str]) -> Digest:
    """The part of the tree *root* under *paths*, with the directories leading
    there; only the directories on the way are read (the Linux sources have
    5,000: walking them all to keep one file took 1 s), everything wanted is kept
    by reference."""
    wanted: dict[str, Any] = {}
    for path in paths:
        parts = [part for part in posixpath.normpath(path).split("/") if part not in ("", ".")]
        level = wanted
        for part in parts[:-1]:
            child = level.setdefault(part, {})
            if child is True:
                break
            level = child
        else:
            if parts:
                level[parts[-1]] = True
            else:
                return root  # the whole tree

    def keep(digest: Digest, under: dict[str, Any]) -> Digest | None:
        contents = read_directory(store.get_directory(digest))
        nodes = []
        for name, deeper in sorted(under.items()):
            node = contents.nodes.get(name)
            if node is None:
                continue
            if deeper is True:
                nodes.append(node)
            elif node.type is FileType.DIRECTORY and node.digest is not None:
                inner = keep(node.digest, deeper)
                if inner is not None:
                    nodes.append(Node(name, FileType.DIRECTORY, digest=inner))
        if not nodes:
            return None
        return store.put_directory(directory_to_proto(nodes, contents.own))

    return keep(root, wanted) or store.put_directory(pb.Directory())


def run(
    store: ContentStore,
    input_root: Digest,
    argv: Sequence[str],
    *,
    cwd: str = "",
    env: Mapping[str, str] | None = None,
    output_paths: Sequence[str] | None = None,
    stage: StageKind = "fuse",
    network: bool = False,
    timeout: float | None = None,
    root_at: str = "/",
    isolate: bool = True,
    stream: bool = False,
) -> RunResult:
    """Run *argv* in the tree *input_root* and capture the tree it leaves.

    :param cwd: the working directory, relative to the tree's root.
    :param env: the whole environment (default: :data:`DEFAULT_ENV`).
    :param output_paths: the paths (relative to the tree's root) kept in the
        output tree; default: all of it.
    :param stage: ``fuse`` (copy-on-write mount), ``hardlink`` or ``copy``.
    :param network: share the host's network (default: none at all).
    :param timeout: seconds before the command is killed (``timed_out``).
    :param root_at: where the tree is mounted (``/``, or a path inside a
        read-only view of the host's system).
    :param isolate: run in bubblewrap (the default); False runs the command as
        a plain child process in the staged directory, without isolation.
    :param stream: copy the command's output to this process's as it comes."""
    if isolate and shutil.which("bwrap") is None:
        raise SandboxError(
            "bubblewrap is not installed (apt-get install bubblewrap), or pass isolate=False",
            reason=REASON_NO_SANDBOX,
        )
    environment = dict(DEFAULT_ENV if env is None else env)
    with tempfile.TemporaryDirectory(prefix="casvfs-run-") as workdir:
        started = time.monotonic()
        with staged(store, input_root, stage, workdir) as (root, capture):
            present = {name for name in _MOUNTPOINTS if os.path.lexists(os.path.join(root, name))}
            if cwd:
                # a working directory the tree lacks is made, as buildbox-run makes it
                os.makedirs(os.path.join(root, cwd), exist_ok=True)
            run_env: Mapping[str, str] | None = None  # bubblewrap sets the command's own
            if isolate:
                command = bwrap_command(
                    root, argv, cwd=cwd, env=environment, network=network, root_at=root_at
                )
                run_cwd = workdir
            else:
                command, run_cwd, run_env = list(argv), os.path.join(root, cwd), environment
            staged_at = time.monotonic()
            exit_code, signum, timed_out, out_path, err_path = _execute(
                command,
                cwd=run_cwd,
                env=run_env,
                workdir=workdir,
                timeout=timeout,
                stream=stream,
                isolate_codes=isolate,
            )
            ran = time.monotonic()
            if isolate and root_at == "/":
                # bubblewrap made the mount points it needed: not the command's output
                for name in set(_MOUNTPOINTS) - present:
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(root, name))
            digest = capture()
        if output_paths is not None:
            digest = _only(store, digest, output_paths)
        captured = time.monotonic()
        output = CasDirectory(store, digest)
        with open(out_path, "rb") as stream_out, open(err_path, "rb") as stream_err:
            stdout, stderr = stream_out.read(), stream_err.read()
        return RunResult(
            exit_code=exit_code,
            signal=signum,
            timed_out=timed_out,
            stdout=stdout,
            stderr=stderr,
            stdout_digest=store.put_bytes(stdout),
            stderr_digest=store.put_bytes(stderr),
            output=output,
            stage_seconds=staged_at - started,
            run_seconds=ran - staged_at,
            capture_seconds=captured - ran,
        )
