"""Mounts that cannot go wrong quietly: checked before mounting, never left behind,
scratch space under the store and reclaimed, corrupt blobs never served, and a
log the user can read. Real FUSE mounts (root and /dev/fuse, as in CI)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, LocalStore, digest_bytes
from casvfs.fuse import MountError, mount
from peers.casd import REPO
from tests.mounts import mounted, wait_dead, wait_unmounted
from tests.trees import build_host

# every test runs on stateless read-only mounts and on mounts with handles
pytestmark = pytest.mark.usefixtures("fuse_open_mode")

LARGE = os.urandom(600 * 1024)  # read through the object file, not whole


def _tree(tmp_path: Path) -> CasDirectory:
    tree = CasDirectory(LocalStore(tmp_path / "store"))
    tree.import_files(build_host(str(tmp_path / "host"), {"small": b"small\n", "large": LARGE}))
    return tree


def _cli(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casvfs.cli", "--store", str(tmp_path / "store"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _scratch(tmp_path: Path) -> list[str]:
    base = tmp_path / "store" / "scratch"
    return sorted(os.listdir(base)) if base.exists() else []


def test_background_mount_on_a_file_fails_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    target = tmp_path / "a-file"
    target.write_text("not a directory")
    started = time.monotonic()
    done = _cli(tmp_path, "mount", str(tree.get_digest()), str(target), "--background")
    assert done.returncode == 1 and time.monotonic() - started < 20
    assert done.stderr == f"casvfs: error: mount failed: cannot mount at {target}: not a directory\n"
    assert not mounted(target) and target.read_text() == "not a directory"
    assert _scratch(tmp_path) == []


def test_mount_on_a_missing_mountpoint_is_one_clear_line(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    missing = tmp_path / "missing"
    done = _cli(tmp_path, "mount", str(tree.get_digest()), str(missing))
    assert done.returncode == 1
    assert done.stderr == f"casvfs: error: cannot mount at {missing}: No such file or directory\n"


def test_a_tree_not_in_the_store_is_refused_before_mounting(tmp_path: Path, mountpoint: Path) -> None:
    tree = _tree(tmp_path)
    absent = digest_bytes(b"no such Directory")
    with pytest.raises(MountError) as failure, mount(tree.store, absent, str(mountpoint)):
        pass
    assert "not in the store" in str(failure.value) and not mounted(mountpoint)
    done = _cli(tmp_path, "mount", str(absent), str(mountpoint), "--background")
    assert done.returncode == 1 and "not in the store" in done.stderr and not mounted(mountpoint)
    assert _scratch(tmp_path) == []


def test_mounting_twice_on_one_mountpoint_is_refused(tmp_path: Path, mountpoint: Path) -> None:
    tree = _tree(tmp_path)
    with mount(tree.store, tree.get_digest(), str(mountpoint)):
        done = _cli(tmp_path, "mount", str(tree.get_digest()), str(mountpoint), "--background")
        assert done.returncode == 1 and "a mount point already" in done.stderr
        assert (mountpoint / "small").read_bytes() == b"small\n"
    assert not mounted(mountpoint)  # one mount only, and it is gone


def test_scratch_lives_in_the_store_and_is_reclaimed_after_kill(tmp_path: Path, mountpoint: Path) -> None:
    tree = _tree(tmp_path)
    with mount(tree.store, tree.get_digest(), str(mountpoint), writable=True) as handle:
        assert Path(handle.scratch).parent == tmp_path / "store" / "scratch"
        (mountpoint / "new").write_bytes(b"written")
    assert _scratch(tmp_path) == []  # cleaned at unmount
    started = _cli(tmp_path, "mount", str(tree.get_digest()), str(mountpoint), "--background", "--writable")
    assert started.returncode == 0, started.stderr
    (mountpoint / "new").write_bytes(b"written")
    os.kill(int(started.stdout), signal.SIGKILL)
    wait_dead(mountpoint)
    assert len(_scratch(tmp_path)) == 1  # what the killed server wrote is still there...
    done = _cli(tmp_path, "fsck", "--repair")
    assert done.returncode == 0 and "removed: scratch/casvfs-scratch-" in done.stdout
    assert _scratch(tmp_path) == []  # ...until fsck --repair (or the next mount) reclaims it


def test_background_mount_after_a_killed_one_answers_at_once(tmp_path: Path, mountpoint: Path) -> None:
    tree = _tree(tmp_path)
    for _ in range(3):
        started = _cli(tmp_path, "mount", str(tree.get_digest()), str(mountpoint), "--background")
        assert started.returncode == 0, started.stderr
        assert (mountpoint / "small").read_bytes() == b"small\n"  # not ENOTCONN from the old one
        os.kill(int(started.stdout), signal.SIGKILL)
        wait_dead(mountpoint)
    subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


def test_the_server_log_is_kept_and_quoted_when_umount_fails(tmp_path: Path, mountpoint: Path) -> None:
    tree = _tree(tmp_path)
    lost = Digest(tree.file_digest("large"), len(LARGE))
    os.unlink(tree.store.object_path(lost))  # type: ignore[attr-defined]
    log = tmp_path / "server.log"
    args = ["mount", str(tree.get_digest()), str(mountpoint), "--background", "--log", str(log)]
    started = _cli(tmp_path, *args)
    assert started.returncode == 0, started.stderr
    with pytest.raises(OSError) as failure:
        (mountpoint / "large").read_bytes()
    assert failure.value.errno == errno.EIO
    assert lost.hash in log.read_text()  # --log FILE: the log says which blob
    assert _cli(tmp_path, "umount", str(mountpoint)).returncode == 0
    wait_unmounted(mountpoint)

    started = _cli(tmp_path, "mount", str(tree.get_digest()), str(mountpoint), "--background")
    assert started.returncode == 0, started.stderr
    with pytest.raises(OSError):
        (mountpoint / "large").read_bytes()
    os.kill(int(started.stdout), signal.SIGKILL)
    wait_dead(mountpoint)
    failed = _cli(tmp_path, "umount", str(mountpoint))
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    assert "its server is gone" in failed.stderr and lost.hash in failed.stderr  # the log's last line
    not_mounted = _cli(tmp_path, "umount", str(tmp_path))
    assert not_mounted.returncode == 1 and "not mounted" in not_mounted.stderr


@pytest.mark.parametrize("name", ["small", "large"])
def test_a_corrupt_blob_is_eio_through_a_mount_and_quarantined(
    tmp_path: Path, mountpoint: Path, name: str
) -> None:
    tree = _tree(tmp_path)
    content = b"small\n" if name == "small" else LARGE
    digest = Digest(tree.file_digest(name), len(content))
    store = tree.store
    assert isinstance(store, LocalStore)
    path = Path(store.object_path(digest))
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, (1321009871, 1321009871))  # only a hash can tell
    with mount(store, tree.get_digest(), str(mountpoint)):
        with pytest.raises(OSError) as failure:
            (mountpoint / name).read_bytes()
        assert failure.value.errno == errno.EIO
    assert not path.exists() and os.listdir(tmp_path / "store" / "quarantine")


def test_a_writable_mount_answers_with_the_errnos_posix_names(tmp_path: Path, mountpoint: Path) -> None:
    tree = _tree(tmp_path)
    with mount(tree.store, tree.get_digest(), str(mountpoint), writable=True):
        assert os.statvfs(mountpoint).f_namemax == 255
        (mountpoint / ("n" * 255)).write_bytes(b"fits")
        for make in (
            lambda: (mountpoint / ("n" * 256)).write_bytes(b"too long"),
            lambda: os.mkdir(mountpoint / ("d" * 256)),
            lambda: os.rename(mountpoint / "small", mountpoint / ("r" * 256)),
        ):
            with pytest.raises(OSError) as failure:
                make()
            assert failure.value.errno == errno.ENAMETOOLONG
        with pytest.raises(OSError) as failure:
            os.truncate(mountpoint / "small", 1 << 62)
        assert failure.value.errno == errno.EFBIG  # the host's answer, not EIO
        fd = os.open(mountpoint / "small", os.O_RDONLY)
        try:
            os.unlink(mountpoint / "small")
            assert os.fstat(fd).st_nlink == 0  # open but unlinked
        finally:
            os.close(fd)
