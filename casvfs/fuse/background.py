"""A mount served by a process of its own, which outlives its caller.

:func:`start_background` starts ``python -m casvfs.fuse.background`` in a new
session and returns once the mount is live; the server runs until the mount is
unmounted (:func:`casvfs.fuse.unmount`) or it gets SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from casvfs.digest import Digest
from casvfs.errors import REASON_MOUNT_FAILED, CasvfsError, MountError
from casvfs.fuse.mount import serve
from casvfs.stores import StoreSpec

START_TIMEOUT = 60.0


def start_background(
    spec: StoreSpec,
    digest: Digest,
    mountpoint: str,
    *,
    writable: bool = False,
    timeout: float = START_TIMEOUT,
) -> int:
    """Mount *digest* of the store *spec* opens at *mountpoint*, served by a new
    process; return its PID once the mount is live.

    A server that fails is reported with the last line it wrote (``mount-failed``);
    one that is not live within *timeout* seconds is killed."""
    command = [sys.executable, "-m", "casvfs.fuse.background", spec.to_json(), str(digest), mountpoint]
    if writable:
        command.append("--writable")
    # The server's log goes to an unlinked file rather than a pipe: nobody reads a pipe
    # once we return, and a full or broken pipe would stall or break the server.
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not os.path.ismount(mountpoint):
            if child.poll() is not None:
                log.seek(0)
                lines = log.read().decode(errors="replace").strip().splitlines()
                raise MountError(
                    f"mount failed: {lines[-1] if lines else 'server exited'}", reason=REASON_MOUNT_FAILED
                )
            if time.monotonic() > deadline:
                child.kill()
                child.wait()
                raise MountError(f"mount did not come up within {timeout:.0f} s", reason=REASON_MOUNT_FAILED)
            time.sleep(0.05)
    return child.pid


def main(argv: Sequence[str] | None = None) -> int:
    """The server process: ``SPEC_JSON DIGEST MOUNTPOINT [--writable]``."""
    parser = argparse.ArgumentParser(prog="python -m casvfs.fuse.background")
    parser.add_argument("spec", help="the store, as StoreSpec.to_json() writes it")
    parser.add_argument("digest")
    parser.add_argument("mountpoint")
    parser.add_argument("--writable", action="store_true")
    args = parser.parse_args(argv)
    try:
        serve(
            StoreSpec.from_json(args.spec).open(),
            Digest.parse(args.digest),
            args.mountpoint,
            writable=args.writable,
        )
    except CasvfsError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
