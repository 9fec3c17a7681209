"""A big source tree's lifecycle: gc of two versions, FetchDirectory of its tarball, seed 000's flow.

    python -m benchmarks.lifecycle [--quick] [--repeat N] [--json FILE]

1. gc: the Linux 6.1 sources imported into a fresh store, then a second version
   with 10 % of its files changed; a reference to each, the first one removed,
   every object aged past the grace period (an hour). ``casvfs.gc.collect`` runs
   in a subprocess (wall time and peak RSS): a dry run, the collection, and a
   collection again with nothing left to remove.
2. FetchDirectory of ``file:///usr/src/linux-source-6.1.tar.xz`` from a fresh
   ``casvfs serve --fetch-allow file:///usr/src/``, which unpacks the tarball
   straight into its CAS (the one call's wall time; the server's peak RSS over
   its life), beside the floor: ``tar xf`` into a temporary directory, then
   ``casvfs import`` of the result into a fresh store. Both must give the same
   root digest; where they do not, what differs is reported.
3. Seed 000's flow against a fresh ``casvfs serve``: machine A runs ``casvfs
   source fetch URI --directory --push`` (from origin, then uploaded), machine B
   the same without ``--push`` on a fresh store (a tree-only pull), machine C with
   ``--full`` (every blob pulled).

``--quick`` runs the same on a few hundred generated files tarred into a
temporary directory (well under a minute). Times are medians of ``--repeat``
runs (default 3 for the cheap gc cases, 1 for the rest), each with fresh stores
and servers; the page cache is warm (the tarball and trees were just read).
Client, servers and tar share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import corpora
from benchmarks.measure import CommandFailed, Sample, run_process
from casvfs import ARBITRARY_TIMESTAMP, CasDirectory, Digest, LocalStore
from casvfs.directory.changes import diff
from casvfs.directory.ingest import import_host_tree
from casvfs.refs import RefIndex
from casvfs.remote import AssetClient, RemoteSpec
from peers.casd import REPO
from peers.casvfs_serve import running_serve

CHANGED_SHARE = 0.10
"""The share of files the second version changes."""
AGE = 7200.0
"""How old every object is made before a collection: past gc's default grace."""
FETCH_TIMEOUT = 1800.0
"""Seconds the server may spend on the FetchDirectory (it answers
DEADLINE_EXCEEDED past that)."""
CHEAP_REPEAT = 3
_MIB = 1 << 20

# collect() in a process of its own, so its peak RSS is its own; the report is
# nested so that measure.run_process keeps the process's wall time
_GC = """
import json, sys
from dataclasses import asdict
from casvfs import LocalStore
from casvfs.gc import collect
report = collect(LocalStore(sys.argv[1]), dry_run=sys.argv[2] == "dry-run")
print(json.dumps({"report": asdict(report)}))
"""
_GC_BASELINE = "import casvfs, casvfs.gc"


@dataclass
class Row:
    """One case: the seconds of each run, and the peak RSS (MiB) of the process
    doing the work (*rss_of* says which)."""

    step: str
    case: str
    rss_of: str = ""
    seconds: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    detail: str = ""
    failed: str = ""
    """Why a run failed (the case then has no time)."""

    def add(self, seconds: float, rss_mib: float | None = None) -> None:
        """Record one run."""
        self.seconds.append(seconds)
        if rss_mib is not None:
            self.rss_mib.append(rss_mib)

    @property
    def median(self) -> float | None:
        """Median seconds; None if no run succeeded."""
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def peak_rss(self) -> float | None:
        """Median peak RSS in MiB, where measured."""
        return statistics.median(self.rss_mib) if self.rss_mib else None

    def done(self) -> Row:
        """Say on stderr that the case is measured; return the row."""
        shown = f"{self.median:.2f} s" if self.median is not None else "FAILED"
        print(f"  {self.step} / {self.case}: {shown}", file=sys.stderr)
        return self


@dataclass(frozen=True)
class Source:
    """What the benchmark runs on: a tarball, the tree it unpacks to (its top
    directory's content, for gc) and the prefix the server may fetch from."""

    tarball: Path
    tree: Path
    allow: str

    @property
    def uri(self) -> str:
        """The tarball's ``file://`` URI."""
        return self.tarball.as_uri()


def linux_source() -> Source:
    """The Linux 6.1 tarball (:data:`benchmarks.corpora.LINUX_TARBALL`) and its
    unpacked sources in the corpora cache."""
    tree = Path(corpora.linux())
    tarball = Path(corpora.LINUX_TARBALL)
    return Source(tarball, tree, tarball.parent.as_uri() + "/")


def quick_source(work: Path, *, files: int = 400, seed: int = 20261125) -> Source:
    """A few hundred source-like files in nested directories, with executables,
    symlinks and an empty directory, tarred (xz) under *work*."""
    rng = random.Random(seed)
    words = ["static", "int", "return", "struct", "void", "const", "unsigned", "if", "else", "for", "{", "}"]
    tree = work / "small-source"
    for index in range(files):
        directory = tree / f"dir{index % 7}" / f"sub{index % 5}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"file{index}.c"
        path.write_text(" ".join(rng.choice(words) for _ in range(rng.randrange(10, 2000))) + "\n")
        if index % 50 == 0:
            path.chmod(0o755)
        if index % 80 == 0:
            (directory / f"link{index}.c").symlink_to(path.name)
    (tree / "empty").mkdir()
    tarball = work / "small-source.tar.xz"
    with tarfile.open(tarball, "w:xz") as archive:
        archive.add(tree, arcname=tree.name)
    return Source(tarball, tree, work.as_uri() + "/")


def _cli(store: Path, config: Path, *arguments: str) -> list[str]:
    """``casvfs`` on *store*, reading no configuration but the empty *config*."""
    return [
        sys.executable,
        "-m",
        "casvfs.cli",
        "--store",
        str(store),
        "--config",
        str(config),
        "-q",
        *arguments,
    ]


def measured(command: list[str], *, cwd: str | None = None) -> tuple[Sample, str]:
    """:func:`benchmarks.measure.run_process` of *command*, its peak RSS taken by
    GNU time where installed: a child's own ``ru_maxrss`` starts from the peak of
    the process it was forked from (the kernel keeps the high-water mark of the
    memory it leaves at exec): this benchmark's own, which holds grpc and casvfs."""
    timer = shutil.which("time")
    if timer is None:
        return run_process(command, cwd=cwd)
    with tempfile.NamedTemporaryFile("r", prefix="casvfs-bench-rss-") as report:
        sample, output = run_process([timer, "-f", "%M", "-o", report.name, *command], cwd=cwd)
        kib = report.read().strip().splitlines()[-1]
    return Sample(sample.seconds, int(kib) / 1024), output


def _mib(size: int) -> str:
    return f"{size / _MIB:,.1f} MiB"


def _held(store: Path) -> tuple[int, int]:
    """The objects of the local store *store* and their bytes."""
    count = total = 0
    for _name, size, _used in LocalStore(store).object_uses():
        count += 1
        total += size
    return count, total


def _peak_rss(pid: int) -> float | None:
    """The peak RSS (VmHWM, MiB) of the live process *pid*."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- 1. gc ---------------------------------------------------------------------------


def second_version(
    tree: Path, copy: Path, *, share: float = CHANGED_SHARE, seed: int = 12
) -> tuple[int, int]:
    """*copy*: *tree* with *share* of its files changed (a line appended); the
    files changed and the files in all. Unchanged files are hard links where the
    file system allows (the tree is only read)."""
    if subprocess.run(["cp", "-al", str(tree), str(copy)], capture_output=True, check=False).returncode:
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    rng = random.Random(seed)
    changed = files = 0
    for dirpath, _dirnames, filenames in os.walk(copy):
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            files += 1
            if rng.random() < share:
                with open(path, "rb") as stream:
                    data = stream.read()
                os.unlink(path)  # not through the hard link into the original tree
                with open(path, "wb") as stream:
                    stream.write(data + b"\n/* changed by benchmarks.lifecycle */\n")
                changed += 1
    return changed, files


def _age(store: LocalStore) -> int:
    """Make every object's last use, and every import, :data:`AGE` seconds old; how
    many objects there are."""
    used = time.time() - AGE
    count = 0
    for relative, _hash in store.iter_objects():
        os.utime(os.path.join(store.root, relative), (used, ARBITRARY_TIMESTAMP))
        count += 1
    store.stat_cache().backdate_imports(AGE)
    return count


def _gc(store: LocalStore, mode: str) -> tuple[Sample, dict[str, Any]]:
    sample, output = measured([sys.executable, "-c", _GC, store.root, mode], cwd=str(REPO))
    report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])["report"]
    report.pop("listed", None)  # a dry run's hashes: thousands of them
    return sample, report


def measure_gc(
    source: Source, work: Path, *, repeat: int, cheap_repeat: int
) -> tuple[list[Row], dict[str, Any]]:
    """Step 1: the gc rows, and what the collections found."""
    changed, files = second_version(source.tree, work / "second")
    store = LocalStore(work / "store")
    index = RefIndex.of_store(store)
    began = time.perf_counter()
    index.set("bench:first", import_host_tree(store, str(source.tree)), store=store)
    index.set("bench:second", import_host_tree(store, str(work / "second")), store=store)
    index.remove("bench:first")
    setup = time.perf_counter() - began
    baseline, _output = measured([sys.executable, "-c", _GC_BASELINE], cwd=str(REPO))
    dry = Row("gc", "dry run", "gc process")
    real = Row("gc", "collect (first version's ref removed)", "gc process")
    again = Row("gc", "collect again (nothing to remove)", "gc process")
    reports: dict[str, dict[str, Any]] = {}
    for attempt in range(repeat):
        if attempt:
            import_host_tree(store, str(source.tree))  # what the last collection removed, back
        _age(store)
        for _run in range(cheap_repeat if attempt == 0 else 0):
            sample, reports["dry run"] = _gc(store, "dry-run")
            dry.add(sample.seconds, sample.rss_mib)
        sample, reports["collect"] = _gc(store, "collect")
        real.add(sample.seconds, sample.rss_mib)
        for _run in range(cheap_repeat if attempt == 0 else 0):
            sample, reports["again"] = _gc(store, "collect")
            again.add(sample.seconds, sample.rss_mib)
    first, dry_report, second = reports["collect"], reports["dry run"], reports["again"]
    if first["kept_young"] or dry_report["removed"] != first["removed"] or second["removed"]:
        raise RuntimeError(f"the collections disagree: {dry_report}, {first}, {second}")
    dry.detail = f"would remove {dry_report['removed']:,} objects ({_mib(dry_report['freed_bytes'])})"
    real.detail = (
        f"{first['objects']:,} objects ({_mib(first['stored_bytes'])}) before, {first['removed']:,} removed "
        f"({_mib(first['freed_bytes'])}), {first['reachable']:,} reachable; "
        f"{changed:,} of {files:,} files changed in the second version; "
        f"collect() itself {first['seconds']:.2f} s; the interpreter with casvfs.gc imported "
        f"peaks at {baseline.rss_mib:.0f} MiB"
    )
    again.detail = f"{second['objects']:,} objects, all reachable"
    rows = [dry.done(), real.done(), again.done()]
    info = {
        "changed_files": changed,
        "files": files,
        "setup_seconds": setup,
        "baseline_rss_mib": baseline.rss_mib,
        "reports": reports,
    }
    return rows, info


# -- 2. FetchDirectory against its floor ----------------------------------------------


def _differences(fetched: tuple[Path, Digest], imported: tuple[Path, Digest]) -> str:
    """What differs between the tree the server unpacked and the import of the
    unpacked tarball (each in its own store)."""
    changes = diff(
        CasDirectory(LocalStore(fetched[0]), fetched[1]), CasDirectory(LocalStore(imported[0]), imported[1])
    )
    parts = []
    for what, paths in (("only in the import", changes.added), ("only in the fetch", changes.removed)):
        if paths:
            parts.append(f"{len(paths)} {what} ({', '.join(paths[:5])}{', ...' if len(paths) > 5 else ''})")
    if changes.modified:
        shown = ", ".join(f"{path} ({changes.kinds[path]})" for path in changes.modified[:5])
        parts.append(f"{len(changes.modified)} differ: {shown}{', ...' if len(changes.modified) > 5 else ''}")
    return "; ".join(parts) or "no path differs (the Directory messages do)"


def measure_fetch(
    source: Source, work: Path, config: Path, *, repeat: int
) -> tuple[list[Row], dict[str, str], list[str]]:
    """Step 2: the rows, the root digests, and findings (digests that differ)."""
    fetch = Row("FetchDirectory", "casvfs serve --fetch-allow: one FetchDirectory", "casvfs serve (its life)")
    untar = Row("floor", "tar xf", "tar (largest process)")
    imported = Row("floor", "casvfs import of the unpacked tree", "casvfs import")
    both = Row("floor", "tar xf + casvfs import")
    digests: dict[str, str] = {}
    findings: list[str] = []
    for attempt in range(repeat):
        run = work / f"run{attempt}"
        with running_serve(run / "serve", "--fetch-allow", source.allow) as server:
            client = AssetClient(RemoteSpec(server.url, timeout=FETCH_TIMEOUT + 60))
            try:
                began = time.perf_counter()
                asset = client.fetch_directory(source.uri, timeout=FETCH_TIMEOUT)
                elapsed = time.perf_counter() - began
            finally:
                client.close()
            server_rss = _peak_rss(server.process.pid)
            served = server.store
        if asset is None:
            log = (run / "serve" / "serve.log").read_text()[-3000:]
            raise RuntimeError(f"casvfs serve found nothing at {source.uri}:\n{log}")
        fetch.add(elapsed, server_rss)
        unpacked = run / "unpacked"
        unpacked.mkdir()
        tar, _output = measured(["tar", "xf", str(source.tarball), "-C", str(unpacked)])
        untar.add(tar.seconds, tar.rss_mib)
        store = run / "import-store"
        casvfs, output = measured(_cli(store, config, "import", str(unpacked), "--json"), cwd=str(REPO))
        imported.add(casvfs.seconds, casvfs.rss_mib)
        both.add(tar.seconds + casvfs.seconds)
        digest = Digest.parse(json.loads(output)["digest"])
        if attempt == 0:
            digests = {"FetchDirectory": str(asset.digest), "tar xf + casvfs import": str(digest)}
            held, size = _held(served)
            fetch.detail = f"the server's store: {held:,} objects ({_mib(size)}), the tarball included"
            if asset.digest != digest:
                findings.append(
                    f"FetchDirectory gave {asset.digest}, tar xf + casvfs import {digest}: "
                    + _differences((served, asset.digest), (store, digest))
                )
        shutil.rmtree(run)
    imported.detail = "into a fresh store, no node properties"
    both.detail = "the floor: what unpacking then importing costs"
    return [fetch.done(), untar.done(), imported.done(), both.done()], digests, findings


# -- 3. seed 000's flow -------------------------------------------------------------


def _failure(error: CommandFailed) -> str:
    """The last line a failed command wrote to stderr (its error)."""
    stderr = str(error).split(": exit ", 1)[-1].split(": ", 1)[-1]  # after "COMMAND: exit N: "
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][:400] if lines else str(error)[:400]


def measure_seed(
    source: Source, work: Path, config: Path, *, repeat: int
) -> tuple[list[Row], dict[str, str], list[str]]:
    """Step 3: A fetches from origin and pushes, B and C get the tree from the
    server (tree-only, full); the rows, the root digests, and findings (machines
    that failed: their rows say so, and the next machine still runs)."""
    what = "casvfs source fetch"
    machines = [
        ("A", ["--push"], "origin", Row("seed 000", "A: source fetch --directory --push", what)),
        ("B", [], "remote", Row("seed 000", "B: source fetch --directory (tree-only)", what)),
        ("C", ["--full"], "remote", Row("seed 000", "C: source fetch --directory --full", what)),
    ]
    notes = {"A": ", the tarball included; from origin, then uploaded", "B": ": the Directory messages"}
    digests: dict[str, str] = {}
    findings: list[str] = []
    for attempt in range(repeat):
        run = work / f"run{attempt}"
        with running_serve(run / "serve") as server:
            for name, options, expected, row in machines:
                store = run / name
                command = _cli(store, config, "--remote", server.url, "source", "fetch", source.uri,
                               "--directory", *options, "--json")  # fmt: skip
                began = time.perf_counter()
                try:
                    sample, output = measured(command, cwd=str(REPO))
                except CommandFailed as error:
                    row.failed = f"failed after {time.perf_counter() - began:.1f} s: {_failure(error)}"
                    findings.append(f"seed 000, machine {name}: {row.failed}")
                    continue
                answer = json.loads(output)
                if answer["found"] != expected:
                    raise RuntimeError(
                        f"machine {name} got the source from {answer['found']}, not {expected}"
                    )
                row.add(sample.seconds, sample.rss_mib)
                if attempt == 0:
                    digests[f"source fetch {name}"] = answer["digest"]
                    held, size = _held(store)
                    row.detail = f"{name}'s store: {held:,} objects ({_mib(size)}){notes.get(name, '')}"
        shutil.rmtree(run)
    return [row.done() for _name, _options, _expected, row in machines], digests, findings


# -- the report -----------------------------------------------------------------------


def _table(rows: list[Row]) -> str:
    lines = ["| step | case | time | runs | peak RSS | RSS of | detail |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        rss = f"{row.peak_rss:.0f} MiB" if row.peak_rss is not None else "n/a"
        time_ = f"{row.median:.2f} s" if row.median is not None else "**failed**"
        detail = "; ".join(part for part in (row.failed, row.detail) if part)
        lines.append(f"| {row.step} | {row.case} | {time_} | {len(row.seconds)} | {rss} "
                     f"| {row.rss_of or 'n/a'} | {detail} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table (Markdown)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lifecycle", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a few hundred generated files, not Linux")
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"runs per case (default {CHEAP_REPEAT} for the cheap gc cases, else 1)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    repeat = args.repeat or 1
    with tempfile.TemporaryDirectory(prefix="casvfs-bench-lifecycle-") as temp:
        work = Path(temp)
        source = quick_source(work / "quick") if args.quick else linux_source()
        config = work / "empty-config.yaml"
        config.write_text("")
        print(f"corpus: {source.uri}", file=sys.stderr)
        (work / "gc").mkdir()
        rows, gc_info = measure_gc(
            source, work / "gc", repeat=repeat, cheap_repeat=args.repeat or CHEAP_REPEAT
        )
        shutil.rmtree(work / "gc")
        fetch_rows, digests, findings = measure_fetch(source, work / "fetch", config, repeat=repeat)
        seed_rows, seed_digests, seed_findings = measure_seed(source, work / "seed", config, repeat=repeat)
    rows += fetch_rows + seed_rows
    digests.update(seed_digests)
    findings += seed_findings
    agree = len(set(digests.values())) == 1
    if not agree:
        findings.append(
            "root digests differ: " + ", ".join(f"{name} {value}" for name, value in digests.items())
        )
    print(_table(rows))
    print()
    print(
        f"root digests {'agree' if agree else 'DIFFER'}: " + (next(iter(digests.values())) if agree else "")
    )
    for finding in findings:
        print(f"- {finding}")
    if args.json:
        result = {
            "corpus": source.uri,
            "rows": [
                {**asdict(row), "median_seconds": row.median, "peak_rss_median_mib": row.peak_rss}
                for row in rows
            ],
            "digests": digests,
            "digests_agree": agree,
            "findings": findings,
            "gc": gc_info,
        }
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
