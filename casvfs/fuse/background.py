"""A mount served by a process of its own, which outlives its caller.

:func:`start_background` starts ``python -m casvfs.fuse.background`` in a new
session and returns once the mount is live; the server runs until the mount is
unmounted (:func:`casvfs.fuse.unmount`) or it gets SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from casvfs.digest import Digest
from casvfs.errors import REASON_MOUNT_FAILED, CasvfsError, MountError, os_errors
from casvfs.fuse.mount import check_mountpoint, clean_stale_mount, serve, unmount
from casvfs.stores import StoreSpec

START_TIMEOUT = 60.0


def default_log(spec: StoreSpec, mountpoint: str) -> str:
    """Where a background server of *mountpoint* logs, unless told otherwise: a file
    in the store's ``logs/`` named after the mountpoint (appended to)."""
    key = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    return os.path.join(spec.path, "logs", f"mount-{key}.log")


_LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(message)s"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def last_log_line(log: str) -> str | None:
    """The message of the last line of the server log *log*, if there is one."""
    try:
        with open(log, "rb") as stream:
            stream.seek(max(0, os.fstat(stream.fileno()).st_size - 8192))
            lines = stream.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return None
    if not lines:
        return None
    fields = lines[-1].split(" ", 4)  # date, time, pid, level, message
    return fields[4] if len(fields) == 5 and fields[3] in _LEVELS else lines[-1]


def start_background(
    spec: StoreSpec,
    digest: Digest,
    mountpoint: str,
    *,
    writable: bool = False,
    log: str | None = None,
    scratch: str | None = None,
    allow_other: bool = False,
    timeout: float = START_TIMEOUT,
) -> int:
    """Mount *digest* of the store *spec* opens at *mountpoint*, served by a new
    process; return its PID once the new server answers at *mountpoint*.

    The server logs to *log* (default :func:`default_log`) and keeps written files
    in *scratch* (default: a new directory in the store's); *allow_other* is as
    for :func:`~casvfs.fuse.mount`. A server that fails is
    reported with the last line it logged (``mount-failed``); one that is not live
    within *timeout* seconds is killed and its mount removed."""
    mountpoint = os.path.abspath(mountpoint)
    log = log or default_log(spec, mountpoint)
    # refused here, or an existing mount would be taken for the new one
    try:
        check_mountpoint(mountpoint)
    except MountError as error:
        raise MountError(f"mount failed: {error}", reason=error.reason) from None
    command = [sys.executable, "-m", "casvfs.fuse.background", spec.to_json(), str(digest), mountpoint]
    if writable:
        command.append("--writable")
    if scratch is not None:
        command += ["--scratch", os.path.abspath(scratch)]
    if allow_other:
        command.append("--allow-other")
    with os_errors(f"cannot open the mount log {log}", kind=MountError):
        os.makedirs(os.path.dirname(log), exist_ok=True)
        stream = open(log, "ab")  # noqa: SIM115 - the child keeps its own descriptor
    # A file rather than a pipe: nobody reads a pipe once we return, and a full or
    # broken pipe would stall or break the server.
    with stream:
        start = stream.tell()
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stream,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not _answers(mountpoint):
        if child.poll() is not None:
            line = last_log_line(log) if os.path.getsize(log) > start else None
            raise MountError(f"mount failed: {line or 'the server exited'}", reason=REASON_MOUNT_FAILED)
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            clean_stale_mount(mountpoint)
            raise MountError(
                f"mount did not come up within {timeout:.0f} s (log: {log})", reason=REASON_MOUNT_FAILED
            )
        time.sleep(0.05)
    return child.pid


def unmount_background(spec: StoreSpec, mountpoint: str, *, log: str | None = None) -> Digest:
    """:func:`~casvfs.fuse.unmount` a mount started by :func:`start_background`; a
    failure names the last line its server logged (*log*, default
    :func:`default_log`)."""
    try:
        return unmount(mountpoint)
    except MountError as error:
        line = last_log_line(log or default_log(spec, mountpoint))
        if line is None:
            raise
        raise MountError(f"{error} (the server's last log line: {line})", reason=error.reason) from None


def _answers(mountpoint: str) -> bool:
    """Whether a live server answers at *mountpoint* (statfs always reaches it)."""
    if not os.path.ismount(mountpoint):
        return False
    try:
        os.statvfs(mountpoint)
    except OSError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """The server process: ``SPEC_JSON DIGEST MOUNTPOINT [--writable] [--scratch DIR] [--allow-other]``."""
    parser = argparse.ArgumentParser(prog="python -m casvfs.fuse.background")
    parser.add_argument("spec", help="the store, as StoreSpec.to_json() writes it")
    parser.add_argument("digest")
    parser.add_argument("mountpoint")
    parser.add_argument("--writable", action="store_true")
    parser.add_argument("--scratch")
    parser.add_argument("--allow-other", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(format=_LOG_FORMAT)
    try:
        serve(
            StoreSpec.from_json(args.spec).open(),
            Digest.parse(args.digest),
            args.mountpoint,
            writable=args.writable,
            scratch=args.scratch,
            allow_other=args.allow_other,
        )
    except CasvfsError as error:
        logging.getLogger("casvfs.fuse").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
