"""The ``casvfs`` command: a local store by default, no server needed."""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from casvfs.digest import Digest
from casvfs.directory.casdir import CasDirectory
from casvfs.directory.changes import diff
from casvfs.directory.ingest import import_host_tree
from casvfs.directory.types import FileType
from casvfs.errors import CasvfsError, StoreError
from casvfs.store import ContentStore, DigestOnlyStore, LocalStore

if TYPE_CHECKING:
    from casvfs.remote import LayeredStore


def default_store_dir() -> str:
    """``$CASVFS_STORE``, else ``$XDG_CACHE_HOME/casvfs``, else ``~/.cache/casvfs``."""
    if os.environ.get("CASVFS_STORE"):
        return os.environ["CASVFS_STORE"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "casvfs")


class Progress:
    """A one-line progress display on stderr, shown only on a terminal and only
    once an operation has taken more than a moment."""

    DELAY = 0.5

    def __init__(self, verb: str) -> None:
        self._verb = verb
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._enabled = sys.stderr.isatty()

    def __call__(self, files: int, size: int) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._start < self.DELAY or now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        rate = size / (now - self._start) / 1e6
        sys.stderr.write(f"\r{self._verb}: {files} files, {size / 1e6:.1f} MB ({rate:.1f} MB/s)")
        sys.stderr.flush()

    def done(self) -> None:
        """Clear the line if anything was shown."""
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def default_config_file() -> str | None:
    """``$CASVFS_CONFIG``, else ``$XDG_CONFIG_HOME/casvfs/config.yaml`` (or
    ``~/.config/…``) if that file exists, else None."""
    if os.environ.get("CASVFS_CONFIG"):
        return os.environ["CASVFS_CONFIG"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = os.path.join(base, "casvfs", "config.yaml")
    return path if os.path.exists(path) else None


def open_store(args: argparse.Namespace) -> ContentStore:
    """The local store, behind the configured remotes if there are any."""
    local = LocalStore(args.store)
    if not (args.remote or args.config or args.project_config):
        return local
    try:
        from casvfs.remote import LayeredStore, RemoteConfig, RemoteSpec
    except ImportError as error:
        raise CasvfsError(
            f"remotes need the remote extra (pip install 'casvfs[remote]'): {error}", reason="no-remote"
        ) from None

    extra = [RemoteSpec(url, instance_name=args.instance_name, push=True) for url in args.remote]
    config = RemoteConfig.load(args.config, args.project_config, extra=extra)
    return LayeredStore(local, config) if config.remotes else local


def _store_options(args: argparse.Namespace) -> list[str]:
    """The global options that recreate *args*' store in a child process."""
    options = ["--store", args.store, "--instance-name", args.instance_name]
    for url in args.remote:
        options += ["--remote", url]
    if args.config:
        options += ["--config", os.path.abspath(args.config)]
    if args.project_config:
        options += ["--project-config", os.path.abspath(args.project_config)]
    return options


def _local(store: ContentStore) -> LocalStore:
    local = getattr(store, "local", store)
    assert isinstance(local, LocalStore)
    return local


def _tree(args: argparse.Namespace, store: ContentStore) -> CasDirectory:
    return CasDirectory(store, Digest.parse(args.digest))


def _cmd_import(args: argparse.Namespace, store: ContentStore) -> None:
    # --digest-only hashes without writing: nothing reaches the store
    target: ContentStore = DigestOnlyStore() if args.digest_only else store
    progress = Progress("hashing" if args.digest_only else "importing")
    try:
        digest = import_host_tree(target, args.path, properties=args.property, progress=progress)
    finally:
        progress.done()
    print(digest)


def _cmd_ls(args: argparse.Namespace, store: ContentStore) -> None:
    tree = _tree(args, store).open_directory(args.path, follow_symlinks=True)
    paths = list(tree.list_relative_paths()) if args.recursive else list(tree)
    for path in paths:
        if not args.long:
            print(path)
            continue
        stat = tree.stat(path)
        if stat.file_type is FileType.DIRECTORY:
            print(f"d          - {path}/")
        elif stat.file_type is FileType.SYMLINK:
            print(f"l          - {path} -> {tree.readlink(path)}")
        else:
            kind = "x" if stat.executable else "-"
            print(f"{kind} {stat.size:>10} {path}  {tree.file_digest(path)}")


def _cmd_cat(args: argparse.Namespace, store: ContentStore) -> None:
    with _tree(args, store).open_file(args.path, mode="rb") as stream:
        while chunk := stream.read(1 << 20):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _cmd_export(args: argparse.Namespace, store: ContentStore) -> None:
    progress = Progress("exporting")
    try:
        _tree(args, store).export_files(args.directory, can_link=args.link, progress=progress)
    finally:
        progress.done()


def _cmd_tar(args: argparse.Namespace, store: ContentStore) -> None:
    tree = _tree(args, store)
    if args.file == "-":
        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as archive:
            tree.export_to_tar(archive, "")
    else:
        with tarfile.open(args.file, mode="w") as archive:
            tree.export_to_tar(archive, "")


def _cmd_diff(args: argparse.Namespace, store: ContentStore) -> None:
    changes = diff(CasDirectory(store, Digest.parse(args.a)), CasDirectory(store, Digest.parse(args.b)))
    lines = [(path, "+") for path in changes.added]
    lines += [(path, "-") for path in changes.removed]
    lines += [(path, "M") for path in changes.modified]
    for path, mark in sorted(lines):
        print(f"{mark} {path}")
    if changes:
        raise SystemExit(1)


def _cmd_fsck(args: argparse.Namespace, store: ContentStore) -> None:
    report = _local(store).fsck(repair=args.repair)
    for path in report.corrupt:
        print(f"corrupt: {path}")
    for path in report.removed:
        print(f"removed: {path}")
    print(f"checked {report.checked} objects, {len(report.corrupt)} corrupt")
    if report.corrupt and not args.repair:
        raise SystemExit(1)


def _layered(store: ContentStore) -> LayeredStore:
    from casvfs.remote import LayeredStore

    if not isinstance(store, LayeredStore):
        raise StoreError(
            "no remote is configured (use --remote URL or a configuration file)", reason="no-remote"
        )
    return store


def _cmd_push(args: argparse.Namespace, store: ContentStore) -> None:
    layered = _layered(store)
    for report in layered.push(Digest.parse(args.digest)):
        print(
            f"{report.remote}: sent {report.missing} of {report.blobs} blobs "
            f"({report.bytes_sent} bytes) in {report.seconds:.2f} s"
        )


def _cmd_pull(args: argparse.Namespace, store: ContentStore) -> None:
    layered = _layered(store)
    root = Digest.parse(args.digest)
    if args.path:
        # only the directories on the way are fetched
        subtree = CasDirectory(layered, root).open_directory(args.path, follow_symlinks=True)
        assert isinstance(subtree, CasDirectory)
        root = subtree.get_digest()
    layered.pull(root, tree_only=args.tree_only)
    print(root)


def _cmd_mount(args: argparse.Namespace, store: ContentStore) -> None:
    digest = Digest.parse(args.digest)
    if args.background:
        _mount_in_background(args)
        return
    from casvfs.fuse.mount import serve_foreground  # needs the fuse extra

    final = serve_foreground(store, digest, args.mountpoint, writable=args.writable)
    if args.writable:
        print(final)


def _mount_in_background(args: argparse.Namespace) -> None:
    """Start a foreground mount in a new session and return once it is live."""
    import subprocess
    import tempfile

    command = [
        sys.executable,
        "-m",
        "casvfs.cli",
        *_store_options(args),
        "mount",
        args.digest,
        args.mountpoint,
    ]
    if args.writable:
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
        deadline = time.monotonic() + 60
        while not os.path.ismount(args.mountpoint):
            if child.poll() is not None:
                log.seek(0)
                lines = log.read().decode(errors="replace").strip().splitlines()
                raise CasvfsError(
                    f"mount failed: {lines[-1] if lines else 'server exited'}", reason="mount-failed"
                )
            if time.monotonic() > deadline:
                child.kill()
                raise CasvfsError("mount did not come up within 60 s", reason="mount-failed")
            time.sleep(0.05)
    print(child.pid)


def _cmd_snapshot(args: argparse.Namespace, store: ContentStore) -> None:
    from casvfs.fuse.mount import snapshot_of

    print(snapshot_of(args.mountpoint))


def _cmd_umount(args: argparse.Namespace, store: ContentStore) -> None:
    import subprocess

    from casvfs.fuse.mount import snapshot_of

    digest = snapshot_of(args.mountpoint)
    done = subprocess.run(["fusermount3", "-u", args.mountpoint], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CasvfsError(f"cannot unmount {args.mountpoint}: {done.stderr.strip()}", reason="mount-failed")
    print(digest)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``casvfs`` command."""
    parser = argparse.ArgumentParser(prog="casvfs", description=__doc__)
    parser.add_argument(
        "--store",
        default=default_store_dir(),
        help="local store directory (default: $CASVFS_STORE or the XDG cache dir)",
    )
    parser.add_argument(
        "--remote",
        action="append",
        default=[],
        metavar="URL",
        help="a remote CAS to read missing blobs from and push to (repeatable; before configured ones)",
    )
    parser.add_argument("--instance-name", default="", help="REAPI instance name of the --remote remotes")
    parser.add_argument(
        "--config",
        default=default_config_file(),
        metavar="FILE",
        help="user configuration of remotes (default: $CASVFS_CONFIG or $XDG_CONFIG_HOME/casvfs/config.yaml)",
    )
    parser.add_argument(
        "--project-config", metavar="FILE", help="a project's configuration recommending remotes"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser("import", help="import a host directory; print its digest")
    command.add_argument("path")
    command.add_argument(
        "--property",
        action="append",
        choices=["mtime", "unix_mode"],
        help="node property to record (repeatable); none by default",
    )
    command.add_argument(
        "--digest-only", action="store_true", help="print the root digest without storing anything"
    )
    command.set_defaults(run=_cmd_import)

    command = commands.add_parser("ls", help="list a directory of a tree")
    command.add_argument("digest", help="root digest, HASH/SIZE")
    command.add_argument("path", nargs="?", default="")
    command.add_argument("-l", "--long", action="store_true", help="type, size and digest")
    command.add_argument("-R", "--recursive", action="store_true", help="every path below")
    command.set_defaults(run=_cmd_ls)

    command = commands.add_parser("cat", help="write a file of a tree to stdout")
    command.add_argument("digest")
    command.add_argument("path")
    command.set_defaults(run=_cmd_cat)

    command = commands.add_parser("export", help="write a tree into a host directory")
    command.add_argument("digest")
    command.add_argument("directory")
    command.add_argument("--link", action="store_true", help="hard-link files from the store")
    command.set_defaults(run=_cmd_export)

    command = commands.add_parser("tar", help="write a tree as a deterministic tar archive")
    command.add_argument("digest")
    command.add_argument("file", help="archive path, or - for stdout")
    command.set_defaults(run=_cmd_tar)

    command = commands.add_parser("diff", help="list paths added (+), removed (-), modified (M)")
    command.add_argument("a")
    command.add_argument("b")
    command.set_defaults(run=_cmd_diff)

    command = commands.add_parser("mount", help="mount a tree (FUSE); foreground until unmounted")
    command.add_argument("digest")
    command.add_argument("mountpoint")
    command.add_argument(
        "--writable", action="store_true", help="copy-on-write; print the new digest at the end"
    )
    command.add_argument(
        "--background", action="store_true", help="return (printing the server pid) once live"
    )
    command.set_defaults(run=_cmd_mount)

    command = commands.add_parser("snapshot", help="print the current digest of a mounted tree")
    command.add_argument("mountpoint")
    command.set_defaults(run=_cmd_snapshot)

    command = commands.add_parser("umount", help="capture a mounted tree, unmount it, print its digest")
    command.add_argument("mountpoint")
    command.set_defaults(run=_cmd_umount)

    command = commands.add_parser("push", help="upload a tree to the remotes marked push")
    command.add_argument("digest")
    command.set_defaults(run=_cmd_push)

    command = commands.add_parser("pull", help="fetch a tree (or one subdirectory of it) from the remotes")
    command.add_argument("digest")
    command.add_argument("--path", default="", help="only this subdirectory of the tree (a prefetch)")
    command.add_argument(
        "--tree-only", action="store_true", help="only the Directory messages; file blobs arrive when read"
    )
    command.set_defaults(run=_cmd_pull)

    command = commands.add_parser("fsck", help="verify every object of the local store")
    command.add_argument("--repair", action="store_true", help="delete corrupt objects")
    command.set_defaults(run=_cmd_fsck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 difference/failure, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args, open_store(args))
    except (CasvfsError, ValueError) as error:
        print(f"casvfs: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`casvfs ls | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        print(f"casvfs: error: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
