"""Reads that never wait for the disk (``casvfs.store.cached_io``, ``read_cached``),
and the use they record later, which garbage collection goes by."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from casvfs import ARBITRARY_TIMESTAMP, CasDirectory, Digest, LocalStore, MemoryStore
from casvfs.digest import digest_bytes
from casvfs.errors import StoreError
from casvfs.fuse import mount
from casvfs.store.cached_io import open_cached, pread_cached
from tests.trees import build_host

# every test runs on stateless read-only mounts and on mounts with handles
pytestmark = pytest.mark.usefixtures("fuse_open_mode")


def _drop_page_cache(path: Path) -> None:
    """Evict *path*'s pages (root drops every clean page; CI runs as root)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_cached_pages_are_read_and_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    data = os.urandom(300_000)
    path.write_bytes(data)
    fd = open_cached(str(path))
    assert fd is not None
    try:
        assert pread_cached(fd, 1000, 5) == data[5:1005]
        assert pread_cached(fd, 1000, len(data) - 10) == data[-10:]  # the end of the file
        assert pread_cached(fd, 1000, len(data) + 10) == b""
        _drop_page_cache(path)
        assert pread_cached(fd, 1000, 200_000) is None  # would have waited for the disk
        assert os.pread(fd, 1000, 200_000) == data[200_000:201_000]
        assert pread_cached(fd, 1000, 200_000) == data[200_000:201_000]
    finally:
        os.close(fd)
    assert open_cached(str(tmp_path / "absent")) is None


def test_read_cached_agrees_with_read_bytes_and_record_use_refreshes(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "store"))
    data = b"content read on an event loop\n" * 100
    digest = store.put_bytes(data)
    path = store.object_path(digest)
    old = time.time() - 7200
    os.utime(path, (old, ARBITRARY_TIMESTAMP))
    assert store.read_cached(digest) == store.read_bytes(digest) == data
    # (the kernel may update an atime on reads itself, relatime: the store sets it
    # explicitly so that noatime mounts work, and record_use is how)
    os.utime(path, (old, ARBITRARY_TIMESTAMP))
    store.record_use([digest])
    assert os.stat(path).st_atime > time.time() - 60
    assert store.read_cached(digest_bytes(b"never stored")) is None
    assert MemoryStore().read_cached(digest) is None


def test_a_corrupt_object_is_refused_on_the_loop_and_reported_by_read_bytes(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "store"))
    digest = store.put_bytes(b"the right content")
    path = store.object_path(digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as stream:
        stream.write(b"THE")
    os.utime(path, (time.time(), ARBITRARY_TIMESTAMP))  # as written, but not the content
    assert store.read_cached(digest) is None
    with pytest.raises(StoreError) as raised:
        store.read_bytes(digest)
    assert raised.value.reason == "blob-corrupt"


def test_reads_through_a_mount_record_their_use(tmp_path: Path, mountpoint: Path) -> None:
    # the kernel itself may refresh atimes on reads (relatime), so what is checked
    # is that every blob the mount served reaches record_use by the unmount
    store = LocalStore(str(tmp_path / "store"))
    tree = CasDirectory(store)
    files = {f"f{index}": f"file {index}\n".encode() for index in range(20)}
    tree.import_files(build_host(str(tmp_path / "host"), files))  # type: ignore[arg-type]
    for data in files.values():
        store.read_bytes(digest_bytes(data))  # in the page cache: served on the loop
    recorded: list[Digest] = []
    record_use = store.record_use

    def recording(digests: Iterable[Digest]) -> None:
        batch = list(digests)
        recorded.extend(batch)
        record_use(batch)

    store.record_use = recording  # type: ignore[method-assign]
    with mount(store, tree.get_digest(), str(mountpoint)):
        for name, data in files.items():
            assert (mountpoint / name).read_bytes() == data
    assert {digest_bytes(data) for data in files.values()} | {tree.get_digest()} <= set(recorded)
