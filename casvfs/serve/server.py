"""``casvfs serve``: one gRPC server a team runs as its BuildStream artifact and
source cache.

Two shapes:

- over a local store (the default): Remote Asset ``Fetch``/``Push`` plus CAS,
  ByteStream and Capabilities on one address, references in the store's refs
  index;
- in front of another REAPI CAS (``remote=``): the asset services alone, content
  checked in that CAS, references in the refs index or in that server's
  ActionCache (``references="action-cache"``: stateless, so several servers in
  front of one BuildGrid share every asset). Clients then name this server as
  their ``type: index`` remote and the CAS as their ``type: storage`` one.
"""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal

import grpc

from casvfs.digest import Digest
from casvfs.errors import REASON_INVALID_CONFIG, ConfigError
from casvfs.gc import collect
from casvfs.refs import Kind, Match, RefIndex, missing_in, missing_in_store
from casvfs.remote.actioncache import ActionCacheClient
from casvfs.remote.client import CasClient
from casvfs.remote.config import RemoteSpec
from casvfs.remote.transfer import push_tree
from casvfs.serve.assets import AssetService, Missing, References
from casvfs.serve.cas import MAX_BATCH_BYTES, CasService
from casvfs.serve.fetching import OriginFetches
from casvfs.serve.metrics import Metrics
from casvfs.serve.references import ActionCacheReferences
from casvfs.serve.rpc import RpcFailure
from casvfs.store.local import LocalStore

log = logging.getLogger("casvfs.serve")

ReferenceBackend = Literal["index", "action-cache"]
REFERENCE_BACKENDS: tuple[ReferenceBackend, ...] = ("index", "action-cache")
# Requests are bounded by the batch limit advertised, plus room for the fields;
# answers may be bigger: one Directory of a huge directory goes alone, whatever its size.
_MAX_MESSAGE = MAX_BATCH_BYTES + (1 << 20)
_MAX_ANSWER = 64 << 20


@dataclass(frozen=True)
class ServeConfig:
    """How to run a server.

    :param store: the local store directory: the CAS served, and where the refs
        index lives (also when fronting a remote).
    :param bind: ``HOST:PORT`` (port 0: any free one) or ``unix:PATH``.
    :param remote: serve the asset services alone, in front of this CAS.
    :param references: ``index`` (embedded) or ``action-cache`` (the remote's).
    :param match: ``subset`` or ``exact`` qualifier matching.
    :param qualifiers: the qualifier names accepted, or None for any.
    :param metrics_port: serve Prometheus metrics on this port (0: any free
        one) of 127.0.0.1, or None for none.
    :param tls_cert: PEM certificate chain of the server (with *tls_key*): TLS.
    :param tls_client_ca: PEM bundle client certificates are checked against;
        every client must then present one.
    :param push_auth: only clients with a listed token (*push_tokens*) or, over
        TLS with *tls_client_ca*, a client certificate may write (Push, and the
        CAS uploads); anyone may read.
    :param push_tokens: a file of accepted tokens, one per line (sent by clients
        as ``authorization: Bearer TOKEN``).
    :param workers: threads answering calls. Python threads share one
        interpreter lock, so more of them answer small calls more slowly: with 8
        clients on 2 cores, 4 workers served 2,700-4,900 Fetches/s and 16 workers
        1,800-1,900/s. A call streaming a big blob holds its worker for the whole
        transfer: a server taking many such transfers at once wants more.
    :param fetch_allow: URL prefixes a Fetch miss may be fetched from (origin
        fetching: downloads, archives, git); none by default.
    :param gc_quota_high: collect garbage in the store every *gc_interval*
        seconds whenever it holds more than this many bytes, down to
        *gc_quota_low* (default: the high mark); see :func:`casvfs.gc.collect`.
    """

    store: str
    bind: str = "127.0.0.1:0"
    instance: str = ""
    remote: RemoteSpec | None = None
    references: ReferenceBackend = "index"
    match: Match = "subset"
    qualifiers: frozenset[str] | None = None
    metrics_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    push_auth: bool = False
    push_tokens: str | None = None
    workers: int = 4
    fetch_allow: tuple[str, ...] = ()
    gc_quota_high: int | None = None
    gc_quota_low: int | None = None
    gc_interval: float = 600.0

    def __post_init__(self) -> None:
        if self.references not in REFERENCE_BACKENDS:
            raise _invalid(
                f"references are kept in {' or '.join(REFERENCE_BACKENDS)}, not {self.references!r}"
            )
        if self.references == "action-cache" and self.remote is None:
            raise _invalid("references in an action cache need a remote CAS to front (--remote)")
        if self.match not in ("subset", "exact"):
            raise _invalid(f"qualifier matching is subset or exact, not {self.match!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _invalid("TLS needs both a certificate and its key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise _invalid("client certificates need TLS (a server certificate and key)")
        if self.push_auth and self.push_tokens is None and self.tls_client_ca is None:
            raise _invalid("push authentication needs a token file or client certificates (TLS)")
        if any(not prefix for prefix in self.fetch_allow):
            raise _invalid("an empty --fetch-allow prefix would allow every URL")
        if self.gc_quota_low is not None and self.gc_quota_high is None:
            raise _invalid("a low gc quota needs a high one")
        if self.gc_interval <= 0:
            raise _invalid("the gc interval must be positive")
        if self.workers < 1:
            raise _invalid("a server needs at least one worker thread")


def _invalid(message: str) -> ConfigError:
    return ConfigError(message, reason=REASON_INVALID_CONFIG)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        raise _invalid(f"cannot read the {what} {path}: {error.strerror}") from None


class _PushGuard:
    """Who may write: everyone, or holders of a listed token or a client certificate."""

    def __init__(self, config: ServeConfig) -> None:
        self._enabled = config.push_auth
        self._certificates = config.tls_client_ca is not None
        tokens = _read(config.push_tokens, "token file").decode().split() if config.push_tokens else []
        self._tokens = [token.encode() for token in tokens]

    def __call__(self, context: grpc.ServicerContext) -> None:
        if not self._enabled:
            return
        if self._certificates and context.auth_context().get("x509_pem_cert"):
            return
        given = [value for key, value in context.invocation_metadata() if key == "authorization"]
        for value in given:
            text = value if isinstance(value, str) else value.decode(errors="replace")
            token = text.removeprefix("Bearer ").strip().encode()
            if any(hmac.compare_digest(token, known) for known in self._tokens):
                return
        if given:
            raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED, "the token given may not push")
        raise RpcFailure(
            grpc.StatusCode.UNAUTHENTICATED, "pushing needs credentials (a token or certificate)"
        )


class Server:
    """A running ``casvfs serve`` (see :class:`ServeConfig`): :meth:`start`, then
    :meth:`stop` or :meth:`wait`."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.port: int | None = None
        """The TCP port bound, once started (None for a unix socket)."""
        self.metrics_port: int | None = None
        """The port metrics are served on, once started, if they are."""
        self._server: grpc.Server | None = None
        self._closers: list[Callable[[], None]] = []
        self._stopping = threading.Event()

    def _services(self) -> list[grpc.GenericRpcHandler[Any, Any]]:
        config = self.config
        guard = _PushGuard(config)
        store = LocalStore(config.store)
        handlers: list[grpc.GenericRpcHandler[Any, Any]] = []
        missing: Missing
        references: References
        publish: Callable[[Kind, Digest], None] | None = None
        if config.remote is None:
            cas = CasService(store, instance=config.instance, metrics=self.metrics, authorize_write=guard)
            handlers += cas.handlers()

            def missing(blobs: Sequence[Digest], trees: Sequence[Digest]) -> list[Digest]:
                return missing_in_store(store, blobs, trees)

            references = RefIndex.of_store(store)
        else:
            client = CasClient(config.remote)
            self._closers.append(client.close)

            def missing(blobs: Sequence[Digest], trees: Sequence[Digest]) -> list[Digest]:
                return missing_in(blobs, trees, find_missing=client.find_missing, directories=client.get_tree)

            def publish(kind: Kind, digest: Digest) -> None:
                # what was fetched into the local store goes where content is checked
                wanted = store.tree_blobs(digest, directories=True) if kind == "directory" else [digest]
                push_tree(client, store, wanted)

            if config.references == "action-cache":
                action_cache = ActionCacheClient(config.remote)
                self._closers.append(action_cache.close)
                references = ActionCacheReferences(action_cache)
            else:
                references = RefIndex.of_store(store)
        origin = None
        if config.fetch_allow:
            origin = OriginFetches(store, config.fetch_allow, references.record, publish=publish)
            self._closers.append(origin.close)
        assets = AssetService(
            references,
            missing,
            instance=config.instance,
            match=config.match,
            qualifiers=config.qualifiers,
            metrics=self.metrics,
            authorize_push=guard,
            origin=origin,
        )
        return handlers + assets.handlers()

    def start(self) -> None:
        """Bind and start serving (in grpcio's threads); returns at once."""
        config = self.config
        server = grpc.server(
            ThreadPoolExecutor(config.workers, thread_name_prefix="casvfs-serve"),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_ANSWER),
                ("grpc.so_reuseport", 0),
            ],
        )
        server.add_generic_rpc_handlers(self._services())
        if config.tls_cert is not None and config.tls_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(_read(config.tls_key, "TLS key"), _read(config.tls_cert, "TLS certificate"))],
                root_certificates=_read(config.tls_client_ca, "client CA") if config.tls_client_ca else None,
                require_client_auth=config.tls_client_ca is not None,
            )
            port = server.add_secure_port(config.bind, credentials)
        else:
            port = server.add_insecure_port(config.bind)
        if port == 0 and not config.bind.startswith("unix:"):
            raise _invalid(f"cannot listen on {config.bind}")
        server.start()
        self._server = server
        self.port = None if config.bind.startswith("unix:") else port
        if config.metrics_port is not None:
            self.metrics_port = self.metrics.serve_http(config.metrics_port)
        if config.gc_quota_high is not None:
            thread = threading.Thread(target=self._collect_garbage, name="casvfs-serve-gc", daemon=True)
            thread.start()

    def _collect_garbage(self) -> None:
        config = self.config
        store = LocalStore(config.store)
        while not self._stopping.wait(config.gc_interval):
            try:
                report = collect(store, quota_high=config.gc_quota_high, quota_low=config.gc_quota_low)
            except Exception:  # a failed pass is logged; the next one tries again
                log.exception("garbage collection failed")
                continue
            self.metrics.gc_freed.inc(report.freed_bytes)
            if report.removed:
                log.info("gc: removed %d objects, %d bytes", report.removed, report.freed_bytes)

    @property
    def address(self) -> str:
        """Where clients connect (``HOST:PORT`` or ``unix:PATH``)."""
        if self.port is None:
            return self.config.bind
        return f"{self.config.bind.rpartition(':')[0]}:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let those under way finish for *grace* seconds,
        then close the connections to remotes."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace).wait()
        for close in self._closers:
            close()

    def wait(self) -> None:
        """Block until the server has stopped."""
        if self._server is not None:
            self._server.wait_for_termination()


def serve(config: ServeConfig, *, ready: Callable[[Server], None] | None = None, grace: float = 5.0) -> None:
    """Run a server until SIGTERM or SIGINT, then stop it cleanly (calls under way
    get *grace* seconds); *ready* is called once it listens."""
    server = Server(config)
    server.start()
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        if not stopping.is_set():
            stopping.set()
            log.info("signal %d: stopping", signum)
            threading.Thread(target=server.stop, args=(grace,), name="casvfs-serve-stop").start()

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        if ready is not None:
            ready(server)
        server.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
