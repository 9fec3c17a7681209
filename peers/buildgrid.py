"""BuildGrid, the Python REAPI server from PyPI, as a subprocess on 127.0.0.1 that
casvfs's own gRPC client can be tested against, insecure or with TLS and client
certificates.

BuildGrid lives in a venv of its own ($CASVFS_BUILDGRID_VENV or .tools/buildgrid):
it vendors REAPI proto modules under the same protobuf names as casvfs's, so none
of it may be imported into the test process. This module therefore imports no grpc
or protobuf module; it only writes a config, runs ``bgd`` and waits for its pid file
and a TCP connect.

Facts about BuildGrid 0.4.4 the tests can rely on (read from its source):

* instance name ``""`` is allowed (``instances: - name: ""``); any other name is
  INVALID_ARGUMENT;
* ``!disk-storage`` keeps blob H at ``PATH/cas/objects/H[:2]/H[2:]`` (the size is
  not part of the path), and nothing verifies a blob against its digest when it is
  read back, so overwriting that file makes the server serve a wrong blob;
* GetCapabilities reports ``max_batch_total_size_bytes`` = 4 MiB - 1 KiB (4193280);
* GetTree honours ``page_size`` by streaming several responses in one call, never
  sets ``next_page_token`` and ignores ``page_token``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from peers.casd import free_port, stop_server

REPO = Path(__file__).resolve().parent.parent
SETUP_HINT = (
    "python3 -m venv .tools/buildgrid && .tools/buildgrid/bin/pip install buildgrid==0.4.4 "
    "installs it (or point $CASVFS_BUILDGRID_VENV at such a venv)"
)
# BuildGrid accepts the empty instance name, which is what casvfs uses by default.
INSTANCE_NAME = ""
STORAGE_KINDS = ("disk", "memory")
# Start-up is about 1.3 s on the 2-core machines; the margin covers a loaded CI box.
START_TIMEOUT = 60.0
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Certificates:
    """PEM files for a TLS server that requires client certificates, all signed by one test CA."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class BuildGridServer:
    """A running BuildGrid: where to dial it, where its disk storage is, and its process."""

    address: str
    storage_path: Path | None
    process: subprocess.Popen[bytes]


def buildgrid_python() -> Path | None:
    """The Python of BuildGrid's venv ($CASVFS_BUILDGRID_VENV or .tools/buildgrid), if present."""
    venv = Path(os.environ.get("CASVFS_BUILDGRID_VENV", REPO / ".tools" / "buildgrid"))
    python = venv / "bin" / "python"
    return python if python.exists() else None


def _bgd_script(python: Path) -> Path | None:
    """The ``bgd`` console script beside *python*, if BuildGrid is installed there."""
    script = python.parent / "bgd"
    return script if script.exists() else None


def _openssl(*arguments: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *arguments], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {arguments[0]} failed: {done.stderr.strip()}")


def make_certificates(directory: Path) -> Certificates:
    """Write a test CA, a server certificate for 127.0.0.1/localhost and a client
    certificate, both signed by the CA, into *directory*.

    The server certificate names 127.0.0.1 as an IP subjectAltName because gRPC
    checks the dialled host against the SAN, not the CN, and the tests dial an IP.
    """
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is not installed (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    days = "30"
    # A CA with the extensions modern verifiers insist on (BoringSSL inside gRPC among them).
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days,
        "-subj", "/CN=casvfs test CA", "-keyout", "ca.key", "-out", "ca.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    server_extensions = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    leaves = {
        "server": ("/CN=localhost", server_extensions),
        "client": ("/CN=casvfs test client", "extendedKeyUsage=clientAuth\n"),
    }
    for serial, (name, (subject, extensions)) in enumerate(leaves.items(), start=1):
        # Extensions of a CSR are not copied by ``x509 -req``; they come from this file.
        (directory / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{extensions}")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(serial), "-days", days, "-extfile", f"{name}.ext", "-out", f"{name}.crt",
            cwd=directory,
        )  # fmt: skip
    return Certificates(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def _quote(value: str | Path) -> str:
    # A JSON string is a valid YAML double-quoted scalar, so any path is safe to embed.
    return json.dumps(str(value))


def buildgrid_config(
    address: str,
    *,
    storage: str,
    storage_path: Path | None,
    tls: Certificates | None,
    action_cache: bool = False,
) -> str:
    """The YAML for ``bgd server start``: one channel, one storage, CAS and ByteStream
    on instance "" (and an LRU ActionCache over the same storage if *action_cache*)."""
    if tls is None:
        channel = f"  - !channel\n    address: {_quote(address)}\n    insecure-mode: true\n"
    else:
        # tls-client-certs is the bundle client certificates are verified against;
        # giving it makes BuildGrid pass require_client_auth=True to gRPC.
        channel = (
            f"  - !channel\n    address: {_quote(address)}\n    insecure-mode: false\n"
            "    credentials:\n"
            f"      tls-server-key: {_quote(tls.server_key.resolve())}\n"
            f"      tls-server-cert: {_quote(tls.server_cert.resolve())}\n"
            f"      tls-client-certs: {_quote(tls.ca_cert.resolve())}\n"
        )
    if storage == "disk":
        assert storage_path is not None
        backend = f"  - !disk-storage &cas-storage\n    path: {_quote(storage_path.resolve())}\n"
    else:
        # LRU memory storage only evicts past this size; tests stay far below it.
        backend = "  - !lru-storage &cas-storage\n    size: 2G\n"
    # No scheduler, execution, action cache or database: CAS and ByteStream need none,
    # and Capabilities is registered by BuildGrid itself for any instance with a CAS.
    # The LRU action cache keeps its map in memory: it lasts as long as the server.
    caches = (
        "caches:\n  - !lru-action-cache &action-cache\n    storage: *cas-storage\n"
        "    max-cached-refs: 100000\n    allow-updates: true\n\n"
        if action_cache
        else ""
    )
    services = "      - !action-cache\n        cache: *action-cache\n" if action_cache else ""
    return (
        f"server:\n{channel}\n"
        f"storages:\n{backend}\n"
        f"{caches}"
        "instances:\n"
        f"  - name: {_quote(INSTANCE_NAME)}\n"
        "    services:\n"
        "      - !cas\n        storage: *cas-storage\n"
        "      - !bytestream\n        storage: *cas-storage\n"
        f"{services}"
    )


def _log_tail(log_path: Path) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return text[-LOG_TAIL_CHARS:]


@contextlib.contextmanager
def running_buildgrid(
    workdir: Path, *, tls: Certificates | None = None, storage: str = "disk", action_cache: bool = False
) -> Iterator[BuildGridServer]:
    """Start BuildGrid on 127.0.0.1 serving CAS and ByteStream (and an ActionCache if
    *action_cache*) on instance "" from *storage* ("disk", kept in
    *workdir*/buildgrid-cas, or "memory"), with TLS and required client
    certificates when *tls* is given; yield it and stop it on exit.

    The config is *workdir*/buildgrid.yml and the server's output *workdir*/buildgrid.log.
    """
    if storage not in STORAGE_KINDS:
        raise ValueError(f"storage must be one of {STORAGE_KINDS}, not {storage!r}")
    python = buildgrid_python()
    bgd = _bgd_script(python) if python is not None else None
    if python is None or bgd is None:
        raise RuntimeError(f"BuildGrid is not installed; {SETUP_HINT}")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"127.0.0.1:{port}"
    storage_path = workdir / "buildgrid-cas" if storage == "disk" else None
    config = workdir / "buildgrid.yml"
    config.write_text(
        buildgrid_config(
            address, storage=storage, storage_path=storage_path, tls=tls, action_cache=action_cache
        )
    )
    log_path = workdir / "buildgrid.log"
    # bgd writes its pid file only after grpc_server.start(); the port alone is not
    # enough, as gRPC already listens (and the kernel accepts) from bind time on.
    pid_file = workdir / "buildgrid.pid"
    pid_file.unlink(missing_ok=True)
    # Nothing of the test process's Python setup may leak into BuildGrid's interpreter,
    # and unbuffered output keeps the log complete when the server dies.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONUNBUFFERED"] = "1"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    # Running the script through the venv's python works even if the venv was moved,
    # which would break the absolute path in bgd's shebang.
    process = subprocess.Popen(
        [str(python), str(bgd), "server", "start", f"--pid-file={pid_file}", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=workdir,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"BuildGrid exited with status {process.returncode}; log tail:\n{_log_tail(log_path)}"
                )
            if pid_file.exists():
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"BuildGrid did not listen on {address} within {START_TIMEOUT:.0f} s; "
                    f"log tail:\n{_log_tail(log_path)}"
                )
            time.sleep(0.05)
        yield BuildGridServer(address=address, storage_path=storage_path, process=process)
    finally:
        # BuildGrid stops cleanly on SIGTERM in about 2 s.
        stop_server(process)
        log.close()


def object_path(server: BuildGridServer, hash_: str) -> Path:
    """Where BuildGrid's disk storage keeps the blob whose hash is *hash_*
    (DiskStorage._get_object_path: objects/H[:2]/H[2:], the size not included)."""
    if server.storage_path is None:
        raise ValueError("this BuildGrid keeps its blobs in memory, not on disk")
    return server.storage_path / "cas" / "objects" / hash_[:2] / hash_[2:]
