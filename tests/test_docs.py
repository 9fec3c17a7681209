"""The documentation builds without warnings and its quick start runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from casvfs import Digest
from peers.casd import REPO


def run_example(name: str, tmp_path: Path) -> list[str]:
    """Run docs/examples/NAME with a store in *tmp_path*; its output lines."""
    env = {**os.environ, "CASVFS_STORE": str(tmp_path / "store"), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "examples" / name)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_quickstart_example_runs(tmp_path: Path) -> None:
    lines = run_example("quickstart.py", tmp_path)
    Digest.parse(lines[0].removeprefix("tool: "))
    Digest.parse(lines[1].removeprefix("sysroot: "))
    assert lines[2] == "['opt', 'opt/tool', 'opt/tool/bin', 'opt/tool/bin/hello']"
    assert lines[3] == "#!/bin/sh"


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(REPO / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "get_digest" in (tmp_path / "html" / "api.html").read_text()
    # commands copied from the pages must keep both hyphens (no smartquotes en dash)
    benchmarks = (tmp_path / "html" / "benchmarks.html").read_text()
    assert "--digest-only" in benchmarks and "\u2013digest-only" not in benchmarks
    assert "export --link" in benchmarks


def test_sandbox_example_runs(tmp_path: Path) -> None:
    lines = run_example("sandbox.py", tmp_path)
    Digest.parse(lines[0].removeprefix("result: "))
    assert lines[1:] == ["['out', 'out/GREETING']", "HELLO FROM THE SANDBOX"]


def test_demo_says_where_it_writes(tmp_path: Path) -> None:
    """The demo names the store it fills before filling it, and runs as the README says."""
    store = tmp_path / "demo-store"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh"), str(REPO / "docs" / "examples")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CASVFS_STORE": str(store)},
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"== store: {store} ") and "CASVFS_STORE=DIR" in first
    assert "round trip OK" in done.stdout and (store / "objects").is_dir()
