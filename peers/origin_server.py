"""A counting HTTP origin for tests and benchmarks: serves the files of a directory
on 127.0.0.1 (as a subprocess, stopped by PID), counts the requests for each path
in a JSON file, and answers paths under ``/slow/`` only after a delay.

    python peers/origin_server.py DIRECTORY COUNTS_FILE [--delay SECONDS]

It prints ``listening on PORT`` once ready.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from peers.casd import stop_server


class _Handler(http.server.SimpleHTTPRequestHandler):
    counts: dict[str, int]
    counts_file: Path
    delay: float
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.counts[self.path] = self.counts.get(self.path, 0) + 1
            self.counts_file.write_text(json.dumps(self.counts))
        if self.path.startswith("/slow/"):
            time.sleep(self.delay)
            self.path = self.path.removeprefix("/slow")
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory")
    parser.add_argument("counts")
    parser.add_argument("--delay", type=float, default=2.0)
    args = parser.parse_args()
    _Handler.counts = {}
    _Handler.counts_file = Path(args.counts)
    _Handler.delay = args.delay
    handler = functools.partial(_Handler, directory=args.directory)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        print(f"listening on {server.server_address[1]}", flush=True)
        server.serve_forever()
    return 0


@dataclass
class Origin:
    """A running origin: its base URL (ending in ``/``) and its request counts."""

    url: str
    counts_file: Path

    def count(self, path: str) -> int:
        """How many requests *path* (``/name``) has had."""
        if not self.counts_file.exists():
            return 0
        counts: dict[str, int] = json.loads(self.counts_file.read_text() or "{}")
        return counts.get(path, 0)


@contextlib.contextmanager
def running_origin(directory: Path, workdir: Path, *, delay: float = 2.0) -> Iterator[Origin]:
    """Serve *directory* over HTTP on 127.0.0.1 (``/slow/NAME`` after *delay*
    seconds); yield it; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    counts = workdir / "origin-counts.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen(
        [sys.executable, "-m", "peers.origin_server", str(directory), str(counts), "--delay", str(delay)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the origin server did not start: {line!r}")
        yield Origin(f"http://127.0.0.1:{int(line.split()[-1])}/", counts)
    finally:
        stop_server(process)


if __name__ == "__main__":
    sys.exit(main())
