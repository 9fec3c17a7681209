"""Drive the real BuildStream 2 (``bst`` from the peers' venv) against a remote
artifact and source cache given by URL: a Remote Asset (Fetch/Push) + CAS +
ByteStream + Capabilities gRPC endpoint such as ``casvfs serve``.

bst never talks to the remote itself: it starts its own buildbox-casd on a unix
socket and asks it (through casd's LocalCAS and Remote Asset proxy services) to
talk to the remote. Everything bst and its casd write goes under one work
directory given to :func:`bst_env`, so a test never touches the user's caches.

Facts about bst 2.8.1 this module relies on (read from its source and checked
on real runs):

* the bundled ``buildbox-run`` is the bubblewrap runner; without ``bwrap`` on
  PATH ``buildbox-run --capabilities`` fails and bst refuses to start at all
  ("Error instantiating platform"). :func:`bst_env` then puts a stub
  ``buildbox-run`` first on PATH that answers ``--capabilities`` and fails any
  real command, which is enough for ``import``/``stack`` elements (they never
  run a command in a sandbox);
* artifacts are Remote Asset *blobs* (an Artifact proto, pushed with
  references_blobs/references_directories) named
  ``urn:fdc:buildstream.build:2020:artifact:PROJECT/ELEMENT/KEY``, one URI per
  distinct strong/weak key on push, the strong key alone on pull; the sources of
  an element are a Remote Asset blob (a Source proto) named
  ``urn:fdc:buildstream.build:2020:source:KEY``, and each source is a Remote
  Asset *directory* named ``urn:fdc:buildstream.build:2020:source:KIND/KEY``;
  bst sends no qualifiers and an empty instance name unless one is configured;
* on start bst probes every remote with a FetchBlob (and, if pushing, a
  PushBlob) naming no URI: INVALID_ARGUMENT (or OK) is accepted, any other
  status makes bst warn "Failed to initialize remote" and carry on without it;
* a ``local`` source is staged into the local CAS just to compute its key, so
  pulling an element built from one finds its files already local; only
  ``dl.bst`` of :func:`write_project` makes a pull download file content;
* the messages parsed below are ``info()`` lines of ``_artifactcache.py``,
  ``_sourcecache.py`` and ``_elementsourcescache.py`` in the default message
  format ``[elapsed][key][action:element] TYPE message``; bst writes them to stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SETUP_HINT = "bash scripts/setup.sh installs BuildStream into .tools/peers"

# What bst 2.8.1 calls its Remote Asset names (_artifactcache.py, _sourcecache.py).
ARTIFACT_URN_PREFIX = "urn:fdc:buildstream.build:2020:artifact:"
SOURCE_URN_PREFIX = "urn:fdc:buildstream.build:2020:source:"

# A stub for buildbox-run: bst only needs "--capabilities" to succeed to start.
_STUB_BUILDBOX_RUN = """#!/bin/sh
# Written by peers/bst.py when there is no sandbox (bubblewrap) in this test environment.
if [ "$1" = "--capabilities" ]; then
    exit 0
fi
echo "stub buildbox-run: no build sandbox available; only import/stack elements can be built" >&2
exit 1
"""

# One bst log line in the default message format:
#   [00:00:00][4deccba7][    push:e0.bst                        ] INFO    Pushed artifact 4deccba7 -> URL
_LINE = re.compile(
    r"^\[[^\]]*\]\[\s*(?P<key>[0-9a-f]*)\s*\]\[\s*(?P<action>[\w-]+):(?P<element>.*?)\s*\]\s+"
    r"(?P<type>[A-Z]+)\s+(?P<message>.*)$"
)


@dataclass(frozen=True)
class BstMessage:
    """One parsed line of bst's log: cache key (abbreviated), action ("push",
    "pull", "build", "main"...), element name, message type ("INFO", "SUCCESS",
    "WARNING"...) and the text."""

    key: str
    action: str
    element: str
    type: str
    message: str


def bst_executable() -> Path:
    """The ``bst`` of the peers' venv ($CASVFS_PEERS_VENV or .tools/peers).

    Raises:
        RuntimeError: if BuildStream is not installed there.
    """
    venv = Path(os.environ.get("CASVFS_PEERS_VENV", REPO / ".tools" / "peers"))
    bst = venv / "bin" / "bst"
    if not bst.exists():
        raise RuntimeError(f"bst is not installed at {bst}; {SETUP_HINT}")
    return bst


def _write(path: Path, text: str, *, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(0o755)


def write_project(root: Path, n_elements: int = 3, *, download_size: int = 64 * 1024) -> list[str]:
    """Write a BuildStream 2 project into *root* and return its element names.

    Element ``eI.bst`` (I in 0..n_elements-1) is an ``import`` element with one
    ``local`` source, ``files/eI``: a top-level file, files in a subdirectory and a
    nested one, and an executable script, all with contents unique to I (so every
    element has its own cache key).

    If *download_size* is not 0 there is also ``dl.bst``, an ``import`` element
    whose ``remote`` source downloads *download_size* pseudo-random bytes from a
    ``file://`` URL (alias ``upstream:``, under *root*/upstream) into
    ``share/dl/blob.bin``, executable. It matters for pull tests: bst stages a
    ``local`` source into its CAS just to compute the cache key, so pulling an
    ``eI.bst`` artifact downloads only its Artifact proto, metadata and the
    directory objects that differ, never its files; ``dl.bst``'s key is the
    source's sha256 ref, so its file must really come from the remote. More than
    the server's max_batch_total_size_bytes (4 MiB on BuildGrid) makes casd use
    ByteStream Write/Read for it.

    The last name returned is ``all.bst``, a ``stack`` element depending on all
    the others.
    """
    if n_elements < 1:
        raise ValueError("n_elements must be at least 1")
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    conf = "name: casvfs-probe\nmin-version: 2.0\nelement-path: elements\n"
    names: list[str] = []
    for index in range(n_elements):
        name = f"e{index}.bst"
        files = root / "files" / f"e{index}"
        _write(files / "README", f"element {index}\n")
        _write(files / "share" / f"e{index}" / "data.txt", f"data of {index}\n" * (index + 1))
        _write(files / "share" / f"e{index}" / "deep" / "nested.bin", bytes(range(index, 256)).hex())
        _write(files / "bin" / f"tool{index}", f"#!/bin/sh\necho tool {index}\n", executable=True)
        _write(
            root / "elements" / name,
            f"kind: import\nsources:\n- kind: local\n  path: files/e{index}\n",
        )
        names.append(name)
    if download_size:
        upstream = root / "upstream"
        upstream.mkdir(parents=True, exist_ok=True)
        # Deterministic bytes that do not compress: a SHA-256 chain.
        chunks: list[bytes] = []
        block = b"casvfs bst_project download"
        for _ in range(-(-download_size // 32)):
            block = hashlib.sha256(block).digest()
            chunks.append(block)
        data = b"".join(chunks)[:download_size]
        (upstream / "blob.bin").write_bytes(data)
        conf += f"aliases:\n  upstream: {json.dumps(upstream.as_uri() + '/')}\n"
        _write(
            root / "elements" / "dl.bst",
            "kind: import\n"
            "config:\n  target: /share/dl\n"
            "sources:\n- kind: remote\n  url: upstream:blob.bin\n"
            f"  ref: {hashlib.sha256(data).hexdigest()}\n  executable: true\n",
        )
        names.append("dl.bst")
    _write(root / "project.conf", conf)
    depends = "".join(f"- {name}\n" for name in names)
    _write(root / "elements" / "all.bst", f"kind: stack\ndepends:\n{depends}")
    names.append("all.bst")
    return names


def bst_env(workdir: Path, *, stub_sandbox: bool | None = None) -> dict[str, str]:
    """An environment for bst with HOME and all XDG directories under *workdir*.

    bst's cache (``XDG_CACHE_HOME/buildstream``: casd's CAS, artifact refs,
    source protos, logs) is therefore *workdir*/cache/buildstream. Only PATH,
    LANG/LC_ALL and TMPDIR are kept from the caller's environment.

    Args:
        workdir: where everything goes; created if missing.
        stub_sandbox: put a stub ``buildbox-run`` first on PATH (see the module
            docstring). ``None`` (the default) does so only when ``bwrap`` is not on PATH.
    """
    workdir = workdir.resolve()
    path = os.environ.get("PATH", os.defpath)
    if stub_sandbox is None:
        stub_sandbox = shutil.which("bwrap", path=path) is None
    env = {
        "HOME": str(workdir / "home"),
        "XDG_CACHE_HOME": str(workdir / "cache"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_RUNTIME_DIR": str(workdir / "runtime"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PATH": path,
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    for key in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    Path(env["XDG_RUNTIME_DIR"]).chmod(0o700)
    if stub_sandbox:
        stub_dir = workdir / "stub-bin"
        _write(stub_dir / "buildbox-run", _STUB_BUILDBOX_RUN, executable=True)
        env["PATH"] = f"{stub_dir}{os.pathsep}{path}"
    return env


def cache_dir(env: dict[str, str]) -> Path:
    """bst's whole local cache for *env* (what to delete to forget every artifact)."""
    return Path(env["XDG_CACHE_HOME"]) / "buildstream"


def _remote_yaml(
    url: str,
    push: bool,
    remote_type: str,
    instance_name: str | None,
    retry_limit: int | None,
    retry_delay_ms: int | None,
    request_timeout: int | None,
) -> str:
    # A JSON string is a valid YAML double-quoted scalar, so any URL or name is safe.
    lines = f"  - url: {json.dumps(url)}\n    type: {remote_type}\n    push: {'true' if push else 'false'}\n"
    if instance_name:
        lines += f"    instance-name: {json.dumps(instance_name)}\n"
    connection = {
        "retry-limit": retry_limit,
        "retry-delay": retry_delay_ms,
        "request-timeout": request_timeout,
    }
    given = {key: value for key, value in connection.items() if value is not None}
    if given:
        lines += "    connection-config:\n" + "".join(
            f"      {key}: {value}\n" for key, value in given.items()
        )
    return lines


def user_config_yaml(
    url: str,
    *,
    push: bool = True,
    source_cache: bool = True,
    remote_type: str = "all",
    instance_name: str | None = None,
    network_retries: int = 0,
    retry_limit: int | None = None,
    retry_delay_ms: int | None = None,
    request_timeout: int | None = None,
) -> str:
    """The text of a bst 2 user configuration using *url* as artifact cache and,
    if *source_cache*, as source cache too (see :func:`write_user_config`)."""
    if remote_type not in ("all", "index", "storage"):
        raise ValueError(f"remote_type must be all, index or storage, not {remote_type!r}")
    for name, value in (("retry_limit", retry_limit), ("retry_delay_ms", retry_delay_ms)):
        # bst copies these into a proto3 field, where 0 means "unset": casd would use its default.
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1 (0 would mean casd's default)")
    remote = _remote_yaml(url, push, remote_type, instance_name, retry_limit, retry_delay_ms, request_timeout)
    text = (
        "scheduler:\n"
        "  fetchers: 2\n"
        "  builders: 1\n"
        "  pushers: 2\n"
        f"  network-retries: {network_retries}\n"
        "  on-error: quit\n"
        "logging:\n"
        "  verbose: true\n"
        "  throttle-ui-updates: false\n"
        "  key-length: 8\n"
        "  error-lines: 40\n"
        "  message-lines: 40\n"
        # Projects may declare caches of their own; these servers take precedence.
        f"artifacts:\n  override-project-caches: true\n  servers:\n{remote}"
    )
    if source_cache:
        text += f"source-caches:\n  override-project-caches: true\n  servers:\n{remote}"
    return text


def write_user_config(path: Path, url: str, **options: Any) -> None:
    """Write a bst 2 user configuration (``buildstream.conf``) to *path*.

    Args:
        url: the remote, e.g. ``http://127.0.0.1:PORT`` (``https://`` for TLS).
        push: whether bst may push to it (otherwise it only pulls).
        source_cache: also use it as source cache (``source-caches:``).
        remote_type: ``all`` (Remote Asset index and CAS storage on one endpoint),
            ``index`` (Remote Asset only) or ``storage`` (CAS only).
        instance_name: REAPI instance name; none by default.
        network_retries: bst's retries of failed network tasks (0: fail at once).
        retry_limit: casd's gRPC retries per call to this remote
            (``connection-config: retry-limit``). casd's default (4 retries, 1 s
            delay doubling) makes a run against an unreachable server take about
            28 s, as bst probes it three times; 1 with ``retry_delay_ms=100``
            makes that under a second. 0 is refused: bst passes it in a proto3
            field where 0 means "unset", so casd would use its default.
        retry_delay_ms: casd's first retry delay in milliseconds
            (``connection-config: retry-delay``).
        request_timeout: casd's per-request timeout to this remote in seconds
            (``connection-config: request-timeout``); it bounds whole transfers too.
    """
    _write(path, user_config_yaml(url, **options))


def run_bst(
    project: Path, env: dict[str, str], *args: str, config: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``bst --no-interactive --config CONFIG -C PROJECT ARGS`` in *env* and
    return the finished process; stdout and stderr are captured as text (bst
    writes its log, which the parsers below read, to stderr). Never raises on a
    non-zero exit status."""
    command = [
        str(bst_executable()),
        "--no-interactive",
        "--no-colors",
        "--config",
        str(config),
        "-C",
        str(project),
        *args,
    ]
    return subprocess.run(
        command,
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def output_of(done: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr of a bst run, in that order."""
    return f"{done.stdout}{done.stderr}"


def messages(output: str) -> list[BstMessage]:
    """Every log line of *output* in bst's default message format, parsed."""
    found: list[BstMessage] = []
    for line in output.splitlines():
        match = _LINE.match(line)
        if match is not None:
            found.append(BstMessage(**match.groupdict()))
    return found


def _elements_with(output: str, prefix: str) -> list[str]:
    names: list[str] = []
    for message in messages(output):
        if message.type == "INFO" and message.message.startswith(prefix) and message.element not in names:
            names.append(message.element)
    return names


def pushed_elements(output: str) -> list[str]:
    """Elements whose artifact bst pushed to a Remote Asset index
    ("INFO Pushed artifact KEY -> URL"), in order."""
    return _elements_with(output, "Pushed artifact ")


def already_pushed_elements(output: str) -> list[str]:
    """Elements bst did not push because the remote already had the artifact
    ("INFO Remote (URL) already has artifact KEY cached")."""
    names: list[str] = []
    for message in messages(output):
        if (
            message.type == "INFO"
            and message.message.startswith("Remote (")
            and " already has artifact " in message.message
            and message.element not in names
        ):
            names.append(message.element)
    return names


def pulled_elements(output: str) -> list[str]:
    """Elements whose artifact bst pulled ("INFO Pulled artifact KEY <- URL"), in order."""
    return _elements_with(output, "Pulled artifact ")


def pushed_sources(output: str) -> list[str]:
    """Elements whose sources bst pushed to the source cache ("INFO Pushed source KEY -> URL")."""
    return _elements_with(output, "Pushed source ")


def pulled_sources(output: str) -> list[str]:
    """Elements whose sources bst pulled from the source cache ("INFO Pulled source KEY <- URL")."""
    return _elements_with(output, "Pulled source ")


def remote_warnings(output: str) -> list[str]:
    """bst's warnings about remotes it could not set up
    ("WARNING Failed to initialize remote URL: REASON"), and about failed pulls."""
    return [
        message.message
        for message in messages(output)
        if message.type == "WARNING"
        and (message.message.startswith("Failed to initialize remote") or "Could not pull" in message.message)
    ]


def checkout(
    project: Path, env: dict[str, str], element: str, dest: Path, config: Path, *, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``bst artifact checkout --deps none --no-integrate --directory DEST ELEMENT``
    (the artifact's files only, no dependencies, no integration commands), which pulls the artifact
    first if it is not cached locally and a remote has it. Raises
    RuntimeError with bst's output if it fails."""
    done = run_bst(
        project,
        env,
        "artifact",
        "checkout",
        "--deps",
        "none",
        "--no-integrate",
        "--directory",
        str(dest),
        element,
        config=config,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bst artifact checkout {element} failed:\n{output_of(done)}")
    return done
