"""Prometheus metrics of ``casvfs serve`` (``prometheus_client``), in a registry of
their own so that several servers in one process keep separate counts."""

from __future__ import annotations

import grpc
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram

# Fetches and pushes take from under a millisecond (a hit in the index) to seconds
# (a completeness check of a big tree over a remote CAS).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The counters and histograms a server keeps; :meth:`serve_http` publishes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "casvfs_serve_requests", "RPCs answered, by method and status code", ["method", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "casvfs_serve_errors", "RPCs answered with a status other than OK", ["method", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "casvfs_serve_request_seconds", "Time to answer an RPC", ["method"], buckets=_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.hits = Counter(
            "casvfs_serve_asset_hits", "Fetches answered with an asset", ["kind"], registry=self.registry
        )
        self.misses = Counter(
            "casvfs_serve_asset_misses", "Fetches answered NOT_FOUND", ["kind", "why"], registry=self.registry
        )
        self.pushes = Counter(
            "casvfs_serve_asset_pushes", "Assets recorded by Push", ["kind"], registry=self.registry
        )
        self.refused = Counter(
            "casvfs_serve_asset_pushes_refused", "Pushes refused", ["kind", "why"], registry=self.registry
        )
        self.origin = Counter(
            "casvfs_serve_origin_fetches", "Fetches from origin, by outcome", ["kind", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.gc_freed = Counter(
            "casvfs_serve_gc_freed_bytes",
            "Bytes freed by automatic garbage collection",
            registry=self.registry,
        )
        self.bytes = Counter(
            "casvfs_serve_bytes", "Blob bytes moved through the CAS services", ["direction"],
            registry=self.registry,
        )  # fmt: skip

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count one answered call of *method*."""
        self.requests.labels(method, code.name).inc()
        if code is not grpc.StatusCode.OK:
            self.errors.labels(method, code.name).inc()
        self.latency.labels(method).observe(seconds)

    def serve_http(self, port: int, address: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP on *address*:*port* (0: any free port) in a
        background thread; return the port."""
        server, _thread = prometheus_client.start_http_server(port, addr=address, registry=self.registry)
        bound: int = server.server_port
        return bound
