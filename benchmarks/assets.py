"""Remote Asset servers under load, same machine, same run, same client:
``casvfs serve`` against buildbox-casd's asset service.

    python -m benchmarks.assets [--requests N] [--threads N] [--rounds N] [--no-bst] [--json FILE]

Fetch and Push latency (median, p99) and throughput with N concurrent client
threads, each on its own connection, making blocking calls (casvfs's own protos,
raw gRPC: no retries or client logic in the way). Every Fetch hits one of 100
pushed assets and its answer is checked; every Push names a fresh URI. Then, if
BuildStream is installed, bst's round trips with each server as its artifact and
source cache: build + push, pull into a wiped cache, a fresh workspace's build.

The client shares the 2 cores with the server: absolute numbers are a ceiling
set by both, the ratio between servers is what to read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from casvfs.digest import digest_bytes
from casvfs.protos import remote_asset_pb2 as ra
from casvfs.protos import remote_execution_pb2 as pb
from peers.casd import casd_binary, running_casd
from peers.casvfs_serve import running_serve

FETCH = "/build.bazel.remote.asset.v1.Fetch/FetchBlob"
PUSH = "/build.bazel.remote.asset.v1.Push/PushBlob"
UPDATE = "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs"
ASSETS = 100
WARMUP = 100
_BLOB = b"the content every benchmark asset names"


@dataclass
class Load:
    """One RPC against one server: latency quantiles (ms) and throughput."""

    server: str
    rpc: str
    requests: int
    threads: int
    median_ms: float
    p99_ms: float
    per_second: float


def _stub(channel: grpc.Channel, method: str, response: Any) -> Callable[..., Any]:
    return channel.unary_unary(
        method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response.FromString
    )


def _qualifiers(index: int) -> list[ra.Qualifier]:
    return [ra.Qualifier(name="bench.index", value=str(index)), ra.Qualifier(name="bench.kind", value="blob")]


def _prepare(address: str) -> None:
    digest = digest_bytes(_BLOB).to_proto()
    with grpc.insecure_channel(address) as channel:
        item = pb.BatchUpdateBlobsRequest.Request(digest=digest, data=_BLOB)
        upload = pb.BatchUpdateBlobsRequest(requests=[item])
        answer = _stub(channel, UPDATE, pb.BatchUpdateBlobsResponse)(upload, timeout=30)
        assert all(item.status.code == 0 for item in answer.responses), answer
        push = _stub(channel, PUSH, ra.PushBlobResponse)
        for index in range(ASSETS):
            push(ra.PushBlobRequest(uris=[f"urn:bench:{index}"], qualifiers=_qualifiers(index),
                                    blob_digest=digest), timeout=30)  # fmt: skip


def _fetch_request(index: int) -> tuple[ra.FetchBlobRequest, str]:
    asset = index % ASSETS
    return ra.FetchBlobRequest(uris=[f"urn:bench:{asset}"], qualifiers=_qualifiers(asset)), FETCH


def _push_request(index: int) -> tuple[ra.PushBlobRequest, str]:
    request = ra.PushBlobRequest(
        uris=[f"urn:bench:new:{time.monotonic_ns()}:{index}"],
        qualifiers=_qualifiers(index),
        blob_digest=digest_bytes(_BLOB).to_proto(),
    )
    return request, PUSH


def _load(
    address: str, server: str, rpc: str, requests: int, threads: int, make: Callable[[int], tuple[Any, str]]
) -> Load:
    expected = digest_bytes(_BLOB).hash
    response = ra.FetchBlobResponse if rpc == "FetchBlob" else ra.PushBlobResponse
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def worker(offset: int) -> None:
        mine: list[float] = []
        try:
            with grpc.insecure_channel(address) as channel:
                call = _stub(channel, FETCH if rpc == "FetchBlob" else PUSH, response)
                for index in range(WARMUP // threads):
                    call(make(index)[0], timeout=30)
                start.wait()
                for index in range(offset, requests, threads):
                    request, _method = make(index)
                    began = time.perf_counter()
                    answer = call(request, timeout=30)
                    mine.append(time.perf_counter() - began)
                    if rpc == "FetchBlob" and (answer.status.code or answer.blob_digest.hash != expected):
                        raise AssertionError(f"{server} answered {answer}")
        except BaseException as error:  # reported after the run, not lost in the thread
            failures.append(error)
            with contextlib.suppress(threading.BrokenBarrierError):
                start.abort()
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(offset,)) for offset in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - began
    if failures:
        raise failures[0]
    ordered = sorted(latencies)
    return Load(
        server=server,
        rpc=rpc,
        requests=len(ordered),
        threads=threads,
        median_ms=statistics.median(ordered) * 1e3,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        per_second=len(ordered) / wall,
    )


@contextlib.contextmanager
def _servers(workdir: Path) -> Iterator[list[tuple[str, str]]]:
    """``(name, address)`` of casvfs serve and, if installed, buildbox-casd."""
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(running_serve(workdir / "casvfs"))
        found = [("casvfs serve", served.url.removeprefix("http://"))]
        if casd_binary() is not None:
            found.append(("buildbox-casd", stack.enter_context(running_casd(workdir / "casd"))))
        yield found


def measure_load(workdir: Path, *, requests: int, threads: int, rounds: int) -> list[Load]:
    """Fetch and Push under load against each server, *rounds* times in turn
    (servers alternate so drift hits both); the round with the median throughput
    is kept for each."""
    results: dict[tuple[str, str], list[Load]] = {}
    with _servers(workdir) as servers:
        for _name, address in servers:
            _prepare(address)
        for _round in range(rounds):
            for name, address in servers:
                for rpc, make in (("FetchBlob", _fetch_request), ("PushBlob", _push_request)):
                    load = _load(address, name, rpc, requests, threads, make)
                    results.setdefault((name, rpc), []).append(load)
    kept = []
    for loads in results.values():
        loads.sort(key=lambda load: load.per_second)
        kept.append(loads[len(loads) // 2])
    return kept


@dataclass
class RoundTrip:
    """bst's round trips (seconds) with one server as its cache."""

    server: str
    build_and_push: float
    pull_into_wiped_cache: float
    fresh_build_pulling: float


def measure_bst(workdir: Path) -> list[RoundTrip]:
    """bst 2.8.1 with casvfs serve, then buildbox-casd, as its artifact and source
    cache; empty if BuildStream is not installed."""
    from peers import bst

    try:
        bst.bst_executable()
    except RuntimeError:
        return []
    project = workdir / "project"
    names = bst.write_project(project, 5, download_size=6 << 20)
    trips = []
    with _servers(workdir / "servers") as servers:
        for name, address in servers:
            case = workdir / name.replace(" ", "-")
            config = case / "buildstream.conf"
            bst.write_user_config(config, f"http://{address}")
            env = bst.bst_env(case / "work")
            timings = []
            for step in ("build", "pull", "fresh"):
                if step == "pull":
                    shutil.rmtree(bst.cache_dir(env))
                if step == "fresh":
                    env = bst.bst_env(case / "fresh")
                arguments = ("artifact", "pull", "--deps", "all") if step == "pull" else ("build",)
                began = time.perf_counter()
                done = bst.run_bst(project, env, *arguments, "all.bst", config=config)
                timings.append(time.perf_counter() - began)
                out = bst.output_of(done)
                moved = bst.pushed_elements(out) if step == "build" else bst.pulled_elements(out)
                if done.returncode != 0 or sorted(moved) != sorted(names):
                    raise RuntimeError(f"bst {step} against {name} moved not every artifact:\n{out[-3000:]}")
            trips.append(RoundTrip(name, *timings))
    return trips


def _table(loads: list[Load], trips: list[RoundTrip]) -> str:
    lines = ["| server | RPC | median | p99 | throughput |", "|---|---|---|---|---|"]
    for load in sorted(loads, key=lambda item: (item.rpc, item.server)):
        lines.append(f"| {load.server} | {load.rpc} | {load.median_ms:.2f} ms | {load.p99_ms:.2f} ms "
                     f"| {load.per_second:.0f}/s |")  # fmt: skip
    if trips:
        lines += ["", "| server | bst build + push | bst artifact pull (wiped cache) | fresh bst build |",
                  "|---|---|---|---|"]  # fmt: skip
        for trip in trips:
            seconds = (trip.build_and_push, trip.pull_into_wiped_cache, trip.fresh_build_pulling)
            lines.append(f"| {trip.server} | " + " | ".join(f"{value:.2f} s" for value in seconds) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables (Markdown)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.assets", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="calls per RPC and server (default 2000)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per RPC and server; the median is kept")
    parser.add_argument("--no-bst", action="store_true", help="skip BuildStream's round trips")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="casvfs-bench-assets-") as work:
        loads = measure_load(
            Path(work) / "load", requests=args.requests, threads=args.threads, rounds=args.rounds
        )
        trips = [] if args.no_bst else measure_bst(Path(work) / "bst")
    print(_table(loads, trips))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"load": [asdict(x) for x in loads], "bst": [asdict(x) for x in trips]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
