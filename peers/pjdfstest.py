"""Serve a host tree through buildbox-fuse (writable, in front of a fresh
buildbox-casd) and run a command while it is mounted; scripts/pjdfstest.sh runs
pjdfstest in it this way.

    python -m peers.pjdfstest --work DIR --tree DIR --mountpoint DIR [--allow-other] -- COMMAND...

COMMAND runs with the mount point as its current directory; its exit status is
this one's. buildbox-fuse 1.4 has no option for FUSE's allow_other (it refuses
``-o``), so --allow-other preloads a small shim, compiled here with cc, that adds
``allow_other`` to the options of its mount(2) call: without it the kernel keeps
every user but root out, and pjdfstest's other-uid assertions fail for that alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from peers.casd import SETUP_HINT, buildbox_binary, capture_tree, running_casd, stop_server

ALLOW_OTHER_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mount(2) as libfuse calls it, with allow_other added to a FUSE mount's options */
int mount(const char *source, const char *target, const char *type, unsigned long flags,
          const void *data) {
    static int (*real)(const char *, const char *, const char *, unsigned long, const void *);
    if (real == NULL)
        real = (int (*)(const char *, const char *, const char *, unsigned long, const void *))
            dlsym(RTLD_NEXT, "mount");
    if (type != NULL && strncmp(type, "fuse", 4) == 0 && data != NULL
        && strstr((const char *)data, "allow_other") == NULL) {
        size_t size = strlen((const char *)data) + sizeof(",allow_other");
        char *options = malloc(size);
        if (options != NULL) {
            snprintf(options, size, "%s,allow_other", (const char *)data);
            int result = real(source, target, type, flags, options);
            free(options);
            return result;
        }
    }
    return real(source, target, type, flags, data);
}
"""


def mount_options(mountpoint: Path) -> list[str] | None:
    """The options of the mount at *mountpoint* (from /proc/self/mountinfo), or None."""
    target = str(mountpoint.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == target:
            # mount options (field 6) and, after the " - " separator, the super options
            rest = fields[fields.index("-") + 3] if "-" in fields else ""
            return fields[5].split(",") + rest.split(",")
    return None


def compile_shim(work: Path) -> Path:
    """The allow_other shim, built into *work*."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("--allow-other needs a C compiler (cc) for its shim")
    source = work / "allow_other.c"
    source.write_text(ALLOW_OTHER_SHIM)
    library = work / "allow_other.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], check=True)
    return library


@contextlib.contextmanager
def mounted(tree: Path, work: Path, mountpoint: Path, *, allow_other: bool) -> Iterator[int]:
    """buildbox-fuse serving *tree* (captured by a fresh buildbox-casd in *work*)
    at *mountpoint*, writable; yield its pid. Unmounts and stops both servers."""
    fuse = buildbox_binary("buildbox-fuse")
    if fuse is None:
        raise RuntimeError(f"buildbox-fuse is not installed; {SETUP_HINT}")
    work.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if allow_other:
        env["LD_PRELOAD"] = str(compile_shim(work))
    with running_casd(work / "casd") as address:
        digest, size = capture_tree(address, tree)
        command = [
            str(fuse),
            f"--local={work / 'casd' / 'casd-cache'}",
            f"--remote=http://{address}",
            f"--input-digest-value={digest}/{size}",
            f"--output-digest={work / 'output-digest'}",
            str(mountpoint),
        ]
        log = open(work / "buildbox-fuse.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while mount_options(mountpoint) is None:
                if process.poll() is not None:
                    raise RuntimeError(f"buildbox-fuse exited: {(work / 'buildbox-fuse.log').read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError("buildbox-fuse did not mount within 30 s")
                time.sleep(0.05)
            options = mount_options(mountpoint) or []
            print(
                f"buildbox-fuse pid {process.pid} serving {digest}/{size} at {mountpoint}"
                f" ({','.join(option for option in options if option)})",
                file=sys.stderr,
            )
            if allow_other and "allow_other" not in options:
                print("warning: the mount lacks allow_other despite the shim", file=sys.stderr)
            yield process.pid
        finally:
            unmount(mountpoint, process)
            log.close()


def unmount(mountpoint: Path, process: subprocess.Popen[bytes]) -> None:
    """Unmount *mountpoint* and see *process* (its server) gone: lazily and by
    signal if it will not go."""
    subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stop_server(process)
    if mount_options(mountpoint) is not None:
        subprocess.run(["fusermount3", "-uz", str(mountpoint)], check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (casd cache, logs)")
    parser.add_argument("--tree", type=Path, required=True, help="host directory to serve")
    parser.add_argument("--mountpoint", type=Path, required=True)
    parser.add_argument("--allow-other", action="store_true", help="let other users into the mount")
    parser.add_argument("command", nargs="+", help="what to run in the mount (after --)")
    args = parser.parse_args(argv)
    with mounted(args.tree, args.work, args.mountpoint, allow_other=args.allow_other):
        return subprocess.run(args.command, cwd=args.mountpoint, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
