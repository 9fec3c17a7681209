"""The ``casvfs`` command: a local store by default, no server needed."""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import time
from collections.abc import Sequence

from casvfs.digest import Digest
from casvfs.directory.casdir import CasDirectory
from casvfs.directory.changes import diff
from casvfs.directory.ingest import import_host_tree
from casvfs.directory.types import FileType
from casvfs.errors import CasvfsError
from casvfs.store import ContentStore, DigestOnlyStore
from casvfs.stores import StoreSpec, default_config_file, default_store_dir


class _ProgressLine:
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


def _spec(args: argparse.Namespace) -> StoreSpec:
    return StoreSpec(
        args.store,
        remotes=tuple(args.remote),
        instance_name=args.instance_name,
        config=args.config,
        project_config=args.project_config,
    )


def _tree(args: argparse.Namespace) -> CasDirectory:
    return CasDirectory(_spec(args).open(), Digest.parse(args.digest))


def _cmd_import(args: argparse.Namespace) -> None:
    # --digest-only hashes without writing: nothing reaches the store
    target: ContentStore = DigestOnlyStore() if args.digest_only else _spec(args).open()
    progress = _ProgressLine("hashing" if args.digest_only else "importing")
    try:
        digest = import_host_tree(target, args.path, properties=args.property, progress=progress)
    finally:
        progress.done()
    print(digest)


def _cmd_ls(args: argparse.Namespace) -> None:
    tree = _tree(args).open_directory(args.path, follow_symlinks=True)
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


def _cmd_cat(args: argparse.Namespace) -> None:
    with _tree(args).open_file(args.path, mode="rb") as stream:
        while chunk := stream.read(1 << 20):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _cmd_export(args: argparse.Namespace) -> None:
    progress = _ProgressLine("exporting")
    try:
        _tree(args).export_files(args.directory, can_link=args.link, progress=progress)
    finally:
        progress.done()


def _cmd_tar(args: argparse.Namespace) -> None:
    tree = _tree(args)
    if args.file == "-":
        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as archive:
            tree.export_to_tar(archive, "")
    else:
        with tarfile.open(args.file, mode="w") as archive:
            tree.export_to_tar(archive, "")


def _cmd_diff(args: argparse.Namespace) -> None:
    store = _spec(args).open()
    changes = diff(CasDirectory(store, Digest.parse(args.a)), CasDirectory(store, Digest.parse(args.b)))
    lines = [(path, "+") for path in changes.added]
    lines += [(path, "-") for path in changes.removed]
    lines += [(path, "M") for path in changes.modified]
    for path, mark in sorted(lines):
        print(f"{mark} {path}")
    if changes:
        raise SystemExit(1)


def _cmd_fsck(args: argparse.Namespace) -> None:
    report = _spec(args).open_local().fsck(repair=args.repair)
    for path in report.corrupt:
        print(f"corrupt: {path}")
    for path in report.removed:
        print(f"removed: {path}")
    print(f"checked {report.checked} objects, {len(report.corrupt)} corrupt")
    if report.corrupt and not args.repair:
        raise SystemExit(1)


def _cmd_push(args: argparse.Namespace) -> None:
    for report in _spec(args).open_remote().push(Digest.parse(args.digest)):
        print(
            f"{report.remote}: sent {report.missing} of {report.blobs} blobs "
            f"({report.bytes_sent} bytes) in {report.seconds:.2f} s"
        )


def _cmd_pull(args: argparse.Namespace) -> None:
    layered = _spec(args).open_remote()
    root = Digest.parse(args.digest)
    if args.path:
        # only the directories on the way are fetched
        subtree = CasDirectory(layered, root).open_directory(args.path, follow_symlinks=True)
        assert isinstance(subtree, CasDirectory)
        root = subtree.get_digest()
    layered.pull(root, tree_only=args.tree_only)
    print(root)


def _cmd_mount(args: argparse.Namespace) -> None:
    digest = Digest.parse(args.digest)
    if args.background:
        from casvfs.fuse import start_background  # needs the fuse extra

        print(start_background(_spec(args), digest, args.mountpoint, writable=args.writable))
        return
    from casvfs.fuse import serve

    final = serve(_spec(args).open(), digest, args.mountpoint, writable=args.writable)
    if args.writable:
        print(final)


def _cmd_snapshot(args: argparse.Namespace) -> None:
    from casvfs.fuse import get_digest

    print(get_digest(args.mountpoint))


def _cmd_umount(args: argparse.Namespace) -> None:
    from casvfs.fuse import unmount

    print(unmount(args.mountpoint))


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
        args.run(args)
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
