"""Sandbox overhead over a big input root: casvfs's stages (FUSE, hardlink) against buildbox-run + casd.

    python -m benchmarks.sandbox [--quick] [--repeat N] [--json FILE]

One REAPI Action, run by three workers: its input root is the Linux 6.1 sources
under ``src/`` beside the host's bash (``/bin/sh``) and the shared libraries it
needs, and its command, ``/bin/sh -c 'echo built > /src/OUTPUT; echo done'``,
writes one small file (the one output path, ``src/OUTPUT``) and one stdout line.
The root is the command's ``/``: buildbox-run binds nothing of the host, so the
same root serves every worker.

* casvfs, ``casvfs.sandbox.execute(store, action, stage="fuse")``: a
  copy-on-write FUSE mount of the root (staged lazily: only what the command
  opens is read), the digest of what changed taken from the live mount;
* casvfs, ``stage="hardlink"``: an export of the root linking files from the
  store (as root: copies, so a write cannot reach the store), imported again
  after the run;
* buildbox-run 1.4.25 against buildbox-casd, which stages the root from its
  local CAS by copying (see :mod:`peers.buildbox_run`) and captures only the
  output paths. The root is uploaded to casd once, untimed.

Per run: staging, the command, capture, staging + capture (the overhead), and
the wall time of the whole call (``execute()``; ``run_action()`` with
buildbox-run's process start and its reading the Action back from casd).
casvfs's times are its :class:`~casvfs.sandbox.RunResult`'s, buildbox-run's
come from its ActionResult's ``execution_metadata`` (input fetch, execution,
output upload). Every worker must give the same stdout and output file digests.

Times are medians of ``--repeat`` runs (default 5) after one untimed warm-up run
per worker, the workers taking turns run by run so drift hits each alike. The
page cache is warm; casd and the workers share the machine's cores.
``--quick`` runs the same on a few hundred generated files (well under a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from benchmarks import corpora
from casvfs import CasDirectory, Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.sandbox import Executed, StageKind, execute, put_action
from casvfs.store import ContentStore
from peers.buildbox_run import buildbox_run_binary, run_action, upload_action
from peers.casd import casd_binary, running_casd
from peers.host_tools import tools_root

DEFAULT_REPEAT = 5
SCRIPT = "echo built > /src/OUTPUT; echo done"
OUTPUT = "src/OUTPUT"
ENV = {"PATH": "/bin"}
EXPECTED_OUTPUT = b"built\n"
EXPECTED_STDOUT = b"done\n"
CASVFS_STAGES: tuple[StageKind, ...] = ("fuse", "hardlink")
_MIB = 1 << 20
Timed = tuple[tuple[float, float, float, float], "Outcome"]
"""Seconds of staging, the command, capture and the whole call; what the run gave."""


@dataclass
class Row:
    """One worker's runs: seconds per run of each phase, and of the whole call."""

    worker: str
    stage: list[float] = field(default_factory=list)
    command: list[float] = field(default_factory=list)
    capture: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    missing: str = ""
    """Why the worker was not measured (not installed)."""
    detail: str = ""

    def add(self, stage: float, command: float, capture: float, wall: float) -> None:
        """Record one run."""
        self.stage.append(stage)
        self.command.append(command)
        self.capture.append(capture)
        self.wall.append(wall)

    @property
    def overhead(self) -> list[float]:
        """Staging + capture of each run."""
        return [stage + capture for stage, capture in zip(self.stage, self.capture, strict=True)]

    def medians(self) -> dict[str, float | None]:
        """The median of each phase (None where nothing was measured)."""
        phases = {"stage": self.stage, "command": self.command, "capture": self.capture,
                  "overhead": self.overhead, "wall": self.wall}  # fmt: skip
        return {name: statistics.median(values) if values else None for name, values in phases.items()}


@dataclass(frozen=True)
class Outcome:
    """What one run produced: exit code, stdout's and the output file's digests."""

    exit_code: int
    stdout: str
    output_file: str


# -- the input root -----------------------------------------------------------------


def input_root(store: ContentStore, tree: str, work: Path) -> tuple[Digest, Digest]:
    """The combined root (bash and its libraries, *tree* under ``src/``) in
    *store*; its digest and *tree*'s."""
    sources = import_host_tree(store, tree)
    root = CasDirectory(store, import_host_tree(store, str(tools_root(work / "tools-root"))))
    root.open_directory("src", create=True).import_files(CasDirectory(store, sources), collect_result=False)
    return root.get_digest(), sources


def _count(tree: str) -> tuple[int, int]:
    """The files and symlinks under *tree* and their bytes."""
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(tree):
        for name in filenames:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


# -- the workers ----------------------------------------------------------------------


def _casvfs_run(store: LocalStore, action: Digest, stage: StageKind) -> Timed:
    began = time.perf_counter()
    done: Executed = execute(store, action, stage=stage)
    wall = time.perf_counter() - began
    ran = done.run
    assert ran is not None  # no cache given: it always runs
    if ran.exit_code != 0:
        raise RuntimeError(f"casvfs {stage}: exit {ran.exit_code}: {ran.stderr.decode(errors='replace')}")
    return (ran.stage_seconds, ran.run_seconds, ran.capture_seconds, wall), _outcome(done.result)


def _seconds(start: Timestamp, end: Timestamp) -> float:
    return (end.ToNanoseconds() - start.ToNanoseconds()) / 1e9


def _buildbox_run(address: str, action: Digest, work: Path) -> Timed:
    began = time.perf_counter()
    answer = run_action(address, action, work)
    wall = time.perf_counter() - began
    result = pb.ActionResult.FromString(answer)
    meta = result.execution_metadata
    stage = _seconds(meta.input_fetch_start_timestamp, meta.input_fetch_completed_timestamp)
    command = _seconds(meta.execution_start_timestamp, meta.execution_completed_timestamp)
    capture = _seconds(meta.output_upload_start_timestamp, meta.output_upload_completed_timestamp)
    if result.exit_code != 0:
        raise RuntimeError(
            f"buildbox-run: exit {result.exit_code}: {(work / 'buildbox-run.log').read_text()}"
        )
    return (stage, command, capture, wall), _outcome(result)


def _outcome(result: pb.ActionResult) -> Outcome:
    files = {item.path: f"{item.digest.hash}/{item.digest.size_bytes}" for item in result.output_files}
    stdout = f"{result.stdout_digest.hash}/{result.stdout_digest.size_bytes}"
    return Outcome(result.exit_code, stdout, files.get(OUTPUT, "missing"))


def measure(tree: str, work: Path, *, repeat: int) -> dict[str, Any]:
    """Every worker's runs of the Action over *tree*: the rows, the setup times,
    the outcomes and what disagrees."""
    store = LocalStore(work / "store")
    began = time.perf_counter()
    root, sources = input_root(store, tree, work)
    action = put_action(store, root, ["/bin/sh", "-c", SCRIPT], output_paths=[OUTPUT], env=ENV)
    setup: dict[str, float] = {"casvfs import": time.perf_counter() - began}
    expected = Outcome(0, str(store.put_bytes(EXPECTED_STDOUT)), str(store.put_bytes(EXPECTED_OUTPUT)))
    rows = [Row(f"casvfs {stage}") for stage in CASVFS_STAGES]
    runs: list[tuple[Row, Callable[[], Timed]]] = [
        (row, functools.partial(_casvfs_run, store, action, stage))
        for row, stage in zip(rows, CASVFS_STAGES, strict=True)
    ]
    peer = Row("buildbox-run + casd")
    rows.append(peer)
    outcomes: dict[str, set[Outcome]] = {}
    with contextlib.ExitStack() as stack:
        if casd_binary() is None or buildbox_run_binary() is None:
            peer.missing = "buildbox-casd or buildbox-run not installed (bash scripts/setup.sh)"
        else:
            address = stack.enter_context(running_casd(work / "casd"))
            began = time.perf_counter()
            upload_action(address, store, action)
            setup["upload to casd"] = time.perf_counter() - began
            runs.append((peer, functools.partial(_buildbox_run, address, action, work / "bbrun")))
        for attempt in range(repeat + 1):  # the first is the warm-up
            for row, call in runs:
                seconds, outcome = call()
                outcomes.setdefault(row.worker, set()).add(outcome)
                which = f"run {attempt}/{repeat}" if attempt else "warm-up"
                print(f"    {row.worker}, {which}: wall {seconds[3]:.2f} s", file=sys.stderr)
                if attempt:
                    row.add(*seconds)
    findings = []
    for worker, seen in outcomes.items():
        if seen != {expected}:
            findings.append(f"{worker} gave {sorted(map(str, seen))}, expected {expected}")
    for row in rows:
        medians = row.medians()
        if row.missing:
            continue
        print(
            f"  {row.worker}: overhead {medians['overhead']:.3f} s, wall {medians['wall']:.3f} s",
            file=sys.stderr,
        )
    rows[0].detail = "staged lazily: a FUSE mount; capture hashes what was written"
    rows[1].detail = "export (as root: copies) + re-import of the whole tree"
    if not peer.missing:
        peer.detail = "casd copies the root out of its CAS; captures only the output path"
    files, size = _count(tree)
    return {
        "rows": rows,
        "setup": setup,
        "root": str(root),
        "sources": str(sources),
        "action": str(action),
        "files": files,
        "bytes": size,
        "expected": asdict(expected),
        "outcomes": {worker: [asdict(item) for item in seen] for worker, seen in outcomes.items()},
        "agree": not findings,
        "findings": findings,
    }


# -- the report -----------------------------------------------------------------------


def _table(rows: list[Row]) -> str:
    lines = ["| worker | staging | command | capture | staging + capture | wall | runs | detail |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        if row.missing:
            lines.append(f"| {row.worker} | n/a | n/a | n/a | n/a | n/a | 0 | {row.missing} |")
            continue
        medians = row.medians()
        shown = " | ".join(
            f"{medians[name]:.3f} s" for name in ("stage", "command", "capture", "overhead", "wall")
        )
        lines.append(f"| {row.worker} | {shown} | {len(row.wall)} | {row.detail} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table (Markdown)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred generated files, not Linux")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, metavar="N",
                        help=f"timed runs per worker (default {DEFAULT_REPEAT})")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    tree = corpora.synthetic("tiny", scale=0.01) if args.quick else corpora.linux()
    print(f"corpus: {tree}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="casvfs-bench-sandbox-") as temp:
        found = measure(tree, Path(temp), repeat=args.repeat)
    rows: list[Row] = found.pop("rows")
    print(f"input root: {found['files']:,} files and symlinks ({found['bytes'] / _MIB:,.1f} MiB) under src/, "
          f"root {found['root']}; setup (untimed): "
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in found["setup"].items()))  # fmt: skip
    print()
    print(_table(rows))
    print()
    if found["agree"]:
        expected = found["expected"]
        print(f"stdout and {OUTPUT} digests agree: {expected['stdout']}, {expected['output_file']}")
    for finding in found["findings"]:
        print(f"- {finding}")
    if args.json:
        found["rows"] = [{**asdict(row), "overhead": row.overhead, "medians": row.medians()} for row in rows]
        Path(args.json).write_text(json.dumps({"corpus": tree, **found}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
