"""``casvfs serve`` as a subprocess on 127.0.0.1, the way the tests and benchmarks
run it: started with the repo's own interpreter, ready once it prints the address
it listens on, stopped by PID (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from peers.casd import REPO, free_port, stop_server

START_TIMEOUT = 30.0
_LISTENING = re.compile(r"listening on (\S+)")
_METRICS = re.compile(r"metrics on (\S+)")


@dataclass
class ServeProcess:
    """A running ``casvfs serve``: its URL, metrics URL (if any), store and process."""

    url: str
    metrics_url: str | None
    store: Path
    process: subprocess.Popen[str]
    log: Path


def _start(store: Path, arguments: Sequence[str], log: Path) -> ServeProcess:
    command = [sys.executable, "-m", "casvfs.cli", "--store", str(store), "serve", *arguments]
    if not any(item.startswith("--bind") for item in arguments):
        command += ["--bind", f"127.0.0.1:{free_port()}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    sink = open(log, "w")  # noqa: SIM115 - the server's own output, closed when it exits
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, text=True, env=env
    )
    sink.close()
    assert process.stdout is not None
    url = metrics = None
    deadline = time.monotonic() + START_TIMEOUT
    while url is None or ("--metrics-port" in arguments and metrics is None):
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            raise RuntimeError(f"casvfs serve exited with {process.returncode}: {log.read_text()[-4000:]}")
        if found := _LISTENING.search(line):
            url = "http://" + found.group(1) if not found.group(1).startswith("unix:") else found.group(1)
        if found := _METRICS.search(line):
            metrics = found.group(1)
        if time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError("casvfs serve did not start in time")
    return ServeProcess(url, metrics, store, process, log)


@contextlib.contextmanager
def running_serve(workdir: Path, *arguments: str, store: Path | None = None) -> Iterator[ServeProcess]:
    """Start ``casvfs serve ARGUMENTS`` with its store in *store* (default
    *workdir*/serve-store) and its log in *workdir*; yield it; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = _start(store or workdir / "serve-store", arguments, workdir / "serve.log")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            stop_server(server.process)


def restart(server: ServeProcess, *arguments: str) -> ServeProcess:
    """Start the server again on the same store (after it was stopped or killed),
    on a new port."""
    return _start(server.store, arguments, server.log.with_suffix(".restarted.log"))
