"""Real FUSE mounts, exercised by real programs and compared with the Directory API.

These need ``/dev/fuse`` and the right to mount (root in CI). They do not skip:
a machine that cannot mount fails them, as the FUSE layer is part of the core.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from casvfs import CasDirectory, ContentStore, Digest, LocalStore, MemoryStore
from casvfs.fuse import Mount, MountError, get_digest, mount
from casvfs.protos import remote_execution_pb2 as pb
from peers.casd import REPO
from tests.mounts import wait_dead, wait_unmounted
from tests.trees import Exe, Link, Spec, build_host, host_snapshot, random_spec

# every test runs on stateless read-only mounts and on mounts with handles
pytestmark = pytest.mark.usefixtures("fuse_open_mode")

SPEC: Spec = {
    "README": b"read me\n",
    "bin": {"tool": Exe(b"#!/bin/sh\necho tool\n"), "alias": Link("tool")},
    "src": {"main.c": b"int main(void) { return 0; }\n", "empty": {}, "same": b"read me\n"},
    "escape": Link("../../../../etc/passwd"),
    "big": os.urandom(3 * 1024 * 1024 + 17),
}


def run(*command: str, cwd: str | Path | None = None) -> str:
    """Run a program; its stdout, or the test fails with its stderr."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


def imported(tmp_path: Path, spec: Spec, store: ContentStore | None = None) -> CasDirectory:
    tree = CasDirectory(store or LocalStore(str(tmp_path / "store")))
    tree.import_files(build_host(str(tmp_path / "host"), spec))
    return tree


# -- read-only --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_programs_see_what_export_writes(tmp_path: Path, mountpoint: Path, seed: int | None) -> None:
    tree = imported(tmp_path, SPEC if seed is None else random_spec(seed))
    exported = tmp_path / "exported"
    tree.export_files(str(exported))
    with mount(tree.store, tree.get_digest(), str(mountpoint)):
        assert host_snapshot(str(mountpoint)) == host_snapshot(str(exported))
        found = run("find", ".", "-mindepth", "1", cwd=mountpoint).split("\n")[:-1]
        assert sorted(path[2:] for path in found) == sorted(tree.list_relative_paths())
        assert run("ls", "-lR", cwd=mountpoint).count("\n") > len(found)
        assert int(run("du", "-sk", ".", cwd=mountpoint).split()[0]) > 0
        for path in tree.list_relative_paths():
            if tree.isfile(path):
                line = run("sha256sum", path, cwd=mountpoint)
                assert line.split()[0] == tree.file_digest(path)
        for path in tree.list_relative_paths():  # export sets file mtimes only
            if tree.isfile(path):
                assert os.lstat(mountpoint / path).st_mtime == os.lstat(exported / path).st_mtime
        deterministic = [
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
            "-",
            ".",
        ]
        mounted_tar = subprocess.run(["tar", *deterministic], cwd=mountpoint, capture_output=True, check=True)
        exported_tar = subprocess.run(["tar", *deterministic], cwd=exported, capture_output=True, check=True)
        assert mounted_tar.stdout == exported_tar.stdout
    # the mount's tar holds what export_to_tar writes (tar(1) adds "./" and differs in format)
    ours = io.BytesIO()
    with tarfile.open(fileobj=ours, mode="w") as archive:
        tree.export_to_tar(archive, "")
    assert _tar_members(ours.getvalue()) == _tar_members(mounted_tar.stdout)


def _tar_members(data: bytes) -> dict[str, tuple[str, int, str]]:
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("./")
            if name in ("", "."):
                continue
            extracted = archive.extractfile(member) if member.isfile() else None
            content = hashlib.sha256(extracted.read()).hexdigest() if extracted else member.linkname
            members[name] = (
                "dir" if member.isdir() else "file" if member.isfile() else "link",
                member.mode & 0o111,
                content,
            )
    return members


def test_attributes_and_digests_are_visible(tmp_path: Path, mountpoint: Path) -> None:
    tree = imported(tmp_path, SPEC)
    with mount(tree.store, tree.get_digest(), str(mountpoint)):
        tool = os.lstat(mountpoint / "bin" / "tool")
        assert tool.st_mode & 0o111 and not os.lstat(mountpoint / "README").st_mode & 0o111
        assert os.lstat(mountpoint / "big").st_size == len(SPEC["big"])  # type: ignore[arg-type]
        assert os.readlink(mountpoint / "escape") == "../../../../etc/passwd"
        assert os.lstat(mountpoint / "README").st_nlink == 1
        assert os.lstat(mountpoint / "big").st_blocks * 512 >= len(SPEC["big"])  # type: ignore[arg-type]
        # identical content and mode: one inode, so one copy in the page cache
        assert os.lstat(mountpoint / "README").st_ino == os.lstat(mountpoint / "src" / "same").st_ino
        assert (
            os.getxattr(mountpoint / "README", "user.casvfs.digest").decode()
            == f"{tree.file_digest('README')}/8"
        )
        src = tree.open_directory("src")
        assert isinstance(src, CasDirectory)
        assert os.getxattr(mountpoint / "src", "user.casvfs.digest").decode() == str(src.get_digest())
        assert os.getxattr(mountpoint, "user.casvfs.digest").decode() == str(tree.get_digest())
        assert get_digest(str(mountpoint)) == tree.get_digest()
        statvfs = os.statvfs(mountpoint)
        assert statvfs.f_bsize > 0 and statvfs.f_blocks > 0
        assert run("df", str(mountpoint))


def test_read_only_mount_refuses_changes(tmp_path: Path, mountpoint: Path) -> None:
    tree = imported(tmp_path, SPEC)
    with mount(tree.store, tree.get_digest(), str(mountpoint)) as handle:
        for attempt in (
            lambda: (mountpoint / "README").write_bytes(b"append"),
            lambda: (mountpoint / "new").write_bytes(b"new"),
            lambda: os.mkdir(mountpoint / "dir"),
            lambda: os.unlink(mountpoint / "README"),
            lambda: os.chmod(mountpoint / "README", 0o755),
        ):
            with pytest.raises(OSError) as failure:
                attempt()
            assert failure.value.errno == errno.EROFS
        assert (mountpoint / "README").read_bytes() == b"read me\n"
    assert handle.get_digest() == tree.get_digest()


def _generated_tree(store: ContentStore, fanout: int, depth: int, files: int) -> Digest:
    """A tree of *fanout*^*depth* leaf directories of *files* files each, sharing
    one blob and, level by level, one Directory message (so it is cheap to make)."""
    blob = store.put_bytes(b"leaf\n")
    level = pb.Directory(
        files=[
            pb.FileNode(name=f"f{index:05}", digest=pb.Digest(hash=blob.hash, size_bytes=blob.size_bytes))
            for index in range(files)
        ]
    )
    for _ in range(depth):
        digest = store.put_directory(level)
        level = pb.Directory(
            directories=[
                pb.DirectoryNode(
                    name=f"d{index:03}", digest=pb.Digest(hash=digest.hash, size_bytes=digest.size_bytes)
                )
                for index in range(fanout)
            ]
        )
    return store.put_directory(level)


def test_mount_is_lazy(mountpoint: Path) -> None:
    store = MemoryStore()
    root = _generated_tree(store, fanout=40, depth=3, files=50)  # 64,000 directories, 3.2 million files
    with mount(store, root, str(mountpoint)) as handle:
        assert (mountpoint / "d007" / "d001" / "d039" / "f00042").read_bytes() == b"leaf\n"
        assert handle.operations.table.loaded_directories == 4  # root and the three on the path
        assert len(os.listdir(mountpoint / "d001")) == 40
        assert handle.operations.table.loaded_directories == 5


def test_stateless_mount_is_not_asked_to_open(tmp_path: Path, mountpoint: Path, fuse_open_mode: str) -> None:
    tree = imported(tmp_path, random_spec(4))
    paths = list(tree.list_relative_paths())
    files = [path for path in paths if tree.isfile(path)]
    directories = [path for path in paths if tree.isdir(path)]
    handle = Mount(tree.store, tree.get_digest(), str(mountpoint))
    operations = handle.operations
    calls = {"open": 0, "opendir": 0}

    def counted(name: str):  # type: ignore[no-untyped-def]
        method = getattr(operations, name)

        async def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return await method(*args, **kwargs)

        return wrapper

    for name in calls:
        setattr(operations, name, counted(name))
    handle.start()
    try:
        for _ in range(2):
            for path in files:
                assert hashlib.sha256((mountpoint / path).read_bytes()).hexdigest() == tree.file_digest(path)
            for path in directories:
                listed = sorted(os.listdir(mountpoint / path))
                assert listed == sorted(os.path.basename(p) for p in paths if os.path.dirname(p) == path)
    finally:
        handle.unmount()
    if fuse_open_mode == "stateless":
        # the first of each is answered ENOSYS, and the kernel asks no more
        assert calls == {"open": 1, "opendir": 1}
    else:
        assert calls["open"] >= 2 * len(files) and calls["opendir"] >= 2 * len(directories)


def test_wide_directory_lists_every_entry(mountpoint: Path) -> None:
    store = MemoryStore()
    root = _generated_tree(store, fanout=1, depth=1, files=25_000)
    with mount(store, root, str(mountpoint)):
        names = os.listdir(mountpoint / "d000")
        assert sorted(names) == [f"f{index:05}" for index in range(25_000)]
        listing = run("ls", "-l", str(mountpoint / "d000")).splitlines()
        assert len(listing) == 25_001  # with the "total" line


def test_missing_blob_is_eio_and_the_mount_survives(
    tmp_path: Path, mountpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = imported(tmp_path, SPEC)
    store = tree.store
    assert isinstance(store, LocalStore)
    lost = Digest(tree.file_digest("src/main.c"), len(SPEC["src"]["main.c"]))  # type: ignore[index,arg-type]
    path = store.local_path(lost)
    assert path is not None
    os.unlink(path)
    with mount(store, tree.get_digest(), str(mountpoint)):
        with pytest.raises(OSError) as failure:
            (mountpoint / "src" / "main.c").read_bytes()
        assert failure.value.errno == errno.EIO
        assert (mountpoint / "README").read_bytes() == b"read me\n"
    assert lost.hash in caplog.text


# -- copy-on-write ------------------------------------------------------------------------


class CountingStore(LocalStore):
    """A local store that counts blob reads and file hashes."""

    opened: list[Digest]
    hashed: list[str]

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.opened = []
        self.hashed = []

    def open(self, digest: Digest):  # type: ignore[no-untyped-def]
        self.opened.append(digest)
        return super().open(digest)

    def open_object(self, digest: Digest) -> int | None:
        self.opened.append(digest)
        return super().open_object(digest)

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        self.hashed.append(str(path))
        return super().put_file(path)


def _import_host_copy(tmp_path: Path, mountpoint: Path, store: ContentStore) -> Digest:
    """The digest the Directory API gives for a host copy of what the mount shows."""
    copy = tmp_path / "copy"
    run("cp", "-a", f"{mountpoint}/.", str(copy))
    tree = CasDirectory(store)
    tree.import_files(str(copy))
    return tree.get_digest()


def test_posix_operations_and_capture(tmp_path: Path, mountpoint: Path) -> None:
    store = CountingStore(str(tmp_path / "store"))
    tree = imported(tmp_path, SPEC, store)
    store.opened.clear()
    with mount(store, tree.get_digest(), str(mountpoint), writable=True) as handle:
        m = mountpoint
        (m / "new.txt").write_bytes(b"new\n")
        with open(m / "README", "r+b") as stream:  # in place, then fsync
            stream.seek(5)
            stream.write(b"ME")
            stream.flush()
            os.fsync(stream.fileno())
        with open(m / "src" / "main.c", "wb") as stream:  # O_TRUNC
            stream.write(b"int main(void) { return 1; }\n")
        os.truncate(m / "src" / "same", 4)
        os.chmod(m / "new.txt", 0o755)
        os.utime(m / "bin" / "tool", (1_000_000, 1_000_000))
        os.symlink("new.txt", m / "link-to-new")
        os.mkdir(m / "made")
        os.rename(m / "new.txt", m / "made" / "moved.txt")
        (m / "replaced").write_bytes(b"old")
        (m / "replacement").write_bytes(b"replacement")
        os.rename(m / "replacement", m / "replaced")
        os.mkdir(m / "target-dir")
        os.rename(m / "src" / "empty", m / "target-dir")  # replaces an empty directory
        os.rmdir(m / "target-dir")
        with pytest.raises(OSError) as failure:
            os.rmdir(m / "bin")
        assert failure.value.errno == errno.ENOTEMPTY
        os.link(m / "README", m / "hardlink")  # a second name of the same (written) file
        os.unlink(m / "escape")
        (m / "made" / "gone").write_bytes(b"unlinked before capture")
        os.unlink(m / "made" / "gone")
        assert (m / "README").read_bytes() == (m / "hardlink").read_bytes() == b"read ME\n"
        assert os.stat(m / "hardlink").st_nlink == 2
        assert (m / "src" / "same").read_bytes() == b"read"
        assert os.stat(m / "made" / "moved.txt").st_mode & 0o111
        assert os.stat(m / "bin" / "tool").st_mtime == 1_000_000
        with pytest.raises(OSError):
            os.getxattr(m / "README", "user.casvfs.digest")  # changed: no digest to show
        # unmodified files were never read: only files opened for writing were copied up
        assert tree.file_digest("big") not in [digest.hash for digest in store.opened]
        expected = _import_host_copy(tmp_path, m, store)  # reads everything, through the mount
        store.hashed.clear()
        assert handle.get_digest() == expected
        # hashed: the written files still in the tree, nothing else
        assert sorted(Path(p).read_bytes() for p in store.hashed) == sorted(
            [b"read ME\n", b"int main(void) { return 1; }\n", b"read", b"new\n", b"replacement"]
        )
        store.hashed.clear()
        assert handle.get_digest() == expected  # nothing written since: nothing hashed
        assert store.hashed == []
    assert handle.get_digest() == expected


def _as_nobody(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell *command* as the unprivileged user ``nobody``."""
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_owners_modes_links_and_special_files_as_posix_says(tmp_path: Path, mountpoint: Path) -> None:
    """A writable mount keeps what POSIX programs set (owners, full modes, access
    times, hard links, fifos and devices) and the kernel checks other users'
    access against it; the capture keeps what REAPI can hold: modes where the tree
    records them, each hard link as a file, no special files."""
    host = build_host(str(tmp_path / "host"), {"a": b"a\n", "shared": {"keep": b"k\n"}, "open": {}})
    tree = CasDirectory(LocalStore(str(tmp_path / "store")))
    tree.import_files(host, properties=["unix_mode"])
    with mount(tree.store, tree.get_digest(), str(mountpoint), writable=True, allow_other=True) as handle:
        m = mountpoint
        os.chown(m / "a", 1234, 5678)
        os.chmod(m / "a", 0o4750)
        info = os.stat(m / "a")
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1234, 5678, 0o4750)
        os.utime(m / "a", ns=(1_000_000_000, 2_000_000_000))
        info = os.stat(m / "a")
        assert (info.st_atime_ns, info.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
        assert info.st_ctime_ns > 2_000_000_000  # the change itself is now

        os.link(m / "a", m / "shared" / "b")
        with open(m / "shared" / "b", "ab") as stream:
            stream.write(b"more\n")
        assert (m / "a").read_bytes() == b"a\nmore\n" and os.stat(m / "a").st_nlink == 2
        assert os.stat(m / "a").st_ino == os.stat(m / "shared" / "b").st_ino
        os.unlink(m / "a")
        assert os.stat(m / "shared" / "b").st_nlink == 1

        os.mkfifo(m / "fifo", 0o640)
        os.mknod(m / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        assert stat.S_ISFIFO(os.stat(m / "fifo").st_mode)
        assert os.stat(m / "null").st_rdev == os.makedev(1, 3)
        with socket.socket(socket.AF_UNIX) as server:  # bind(2) makes the socket by mknod
            here = os.getcwd()
            os.chdir(m)  # a relative name: socket paths are short
            try:
                server.bind("sock")
            finally:
                os.chdir(here)
        assert stat.S_ISSOCK(os.stat(m / "sock").st_mode)
        os.mkdir(m / "sub")
        assert os.stat(m).st_nlink == 2 + 3  # shared, open, sub

        # other users: the kernel checks the modes and owners the mount shows
        os.chmod(m / "shared", 0o755)
        os.chmod(m / "open", 0o1777)
        (m / "open" / "roots").write_bytes(b"root's")
        assert _as_nobody("echo x > shared/new", m).returncode != 0  # not writable by others
        assert _as_nobody("rm -f open/roots", m).returncode != 0  # sticky: not its file
        assert _as_nobody("echo mine > open/mine && chmod 600 open/mine", m).returncode == 0
        mine = os.stat(m / "open" / "mine")
        assert (mine.st_uid, mine.st_gid, stat.S_IMODE(mine.st_mode)) == (65534, 65534, 0o600)

        expected_copy = tmp_path / "copy"
        run("cp", "-a", f"{m}/.", str(expected_copy))
    expected = CasDirectory(LocalStore(str(tmp_path / "store")))
    expected.import_files(str(expected_copy), properties=["unix_mode"])  # fifo, device: left out
    assert handle.get_digest() == expected.get_digest()
    captured = handle.directory()
    assert not any(captured.exists(name) for name in ("fifo", "null", "sock"))
    assert _recorded_mode(tree.store, handle.get_digest(), "shared/b") == 0o4750
    assert _recorded_mode(tree.store, handle.get_digest(), "open/mine") == 0o600


def _recorded_mode(store: ContentStore, root: Digest, path: str) -> int:
    """The ``unix_mode`` a tree records for the file at *path*."""
    *directories, name = path.split("/")
    message = store.get_directory(root)
    for part in directories:
        (entry,) = [node for node in message.directories if node.name == part]
        message = store.get_directory(Digest.from_proto(entry.digest))
    (file,) = [node for node in message.files if node.name == name]
    return int(file.node_properties.unix_mode.value)


def test_build_tools_in_a_writable_mount(tmp_path: Path, mountpoint: Path) -> None:
    spec: Spec = {
        "project": {
            "hello.c": b'#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n',
            "Makefile": b"hello: hello.c\n\tcc -O0 -o hello hello.c\n",
            "pkg": {"__init__.py": b"", "mod.py": b"VALUE = 42\n"},
        },
        "data": random_spec(3),
    }
    tree = imported(tmp_path, spec)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    with mount(tree.store, tree.get_digest(), str(mountpoint), writable=True) as handle:
        project = mountpoint / "project"
        run("make", cwd=project)
        assert run(str(project / "hello")) == "hello\n"
        run(sys.executable, "-m", "compileall", "-q", ".", cwd=project)
        assert list((project / "pkg" / "__pycache__").iterdir())
        run(*git, "init", "-q", cwd=project)
        run(*git, "add", "-A", cwd=project)
        run(*git, "commit", "-q", "-m", "build", cwd=project)
        assert run(*git, "status", "--porcelain", cwd=project) == ""
        assert run(*git, "fsck", "--strict", cwd=project) == ""
        run("cp", "-a", "data", "data-copy", cwd=mountpoint)
        run("mv", "data-copy", "project/data-moved", cwd=mountpoint)
        run("rm", "-rf", "data", cwd=mountpoint)
        expected = _import_host_copy(tmp_path, mountpoint, tree.store)
    assert handle.get_digest() == expected
    result = handle.directory()
    assert result.isfile("project/hello") and result.stat("project/hello").executable
    assert not result.exists("data")
    assert result.isdir("project/.git/objects")


# -- lifecycle ------------------------------------------------------------------------------


def _cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casvfs.cli", "--store", str(store), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_cli_mount_snapshot_umount(tmp_path: Path, mountpoint: Path) -> None:
    tree = imported(tmp_path, SPEC)
    store = tmp_path / "store"
    started = _cli(store, "mount", str(tree.get_digest()), str(mountpoint), "--writable", "--background")
    assert started.returncode == 0, started.stderr
    assert os.path.ismount(mountpoint)
    (mountpoint / "src" / "new").write_bytes(b"new")
    snapshot = _cli(store, "snapshot", str(mountpoint))
    assert snapshot.returncode == 0, snapshot.stderr
    expected = tree.open_directory("src")
    with expected.open_file("new", mode="wb") as stream:
        stream.write(b"new")
    assert Digest.parse(snapshot.stdout.strip()) == tree.get_digest()
    unmounted = _cli(store, "umount", str(mountpoint))
    assert unmounted.returncode == 0, unmounted.stderr
    assert Digest.parse(unmounted.stdout.strip()) == tree.get_digest()
    wait_unmounted(mountpoint)
    # the captured tree is in the store: a new process can list it
    listing = _cli(store, "ls", unmounted.stdout.strip(), "src")
    assert "new" in listing.stdout.split()


def test_sigterm_unmounts_cleanly(tmp_path: Path, mountpoint: Path) -> None:
    tree = imported(tmp_path, SPEC)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casvfs.cli",
            "--store",
            str(tmp_path / "store"),
            "mount",
            str(tree.get_digest()),
            str(mountpoint),
            "--writable",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while not os.path.ismount(mountpoint):
        assert server.poll() is None and time.monotonic() < deadline, (
            server.stderr.read() if server.stderr else ""
        )
        time.sleep(0.05)
    (mountpoint / "README").write_bytes(b"changed\n")
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert not os.path.ismount(mountpoint)
    with tree.open_file("README", mode="wb") as stream:
        stream.write(b"changed\n")
    assert Digest.parse(out.strip()) == tree.get_digest()


def test_killed_mount_is_cleaned_before_the_next(tmp_path: Path, mountpoint: Path) -> None:
    tree = imported(tmp_path, SPEC)
    started = _cli(tmp_path / "store", "mount", str(tree.get_digest()), str(mountpoint), "--background")
    assert started.returncode == 0, started.stderr
    os.kill(int(started.stdout.strip()), signal.SIGKILL)
    wait_dead(mountpoint)
    with mount(tree.store, tree.get_digest(), str(mountpoint)):
        assert (mountpoint / "README").read_bytes() == b"read me\n"


def test_one_mount_per_process(tmp_path: Path, mountpoint: Path) -> None:
    tree = imported(tmp_path, SPEC)
    other = tmp_path / "other"
    other.mkdir()
    with mount(tree.store, tree.get_digest(), str(mountpoint)):
        with pytest.raises(MountError) as failure:
            Mount(tree.store, tree.get_digest(), str(other)).start()
        assert failure.value.reason == "mount-failed"
    with pytest.raises(MountError):
        get_digest(str(mountpoint))  # not a mount any more
