"""Mounting a tree digest: a handle for Python code, the foreground loop of
``casvfs mount``, and the digest and unmount of a mount served by any process."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat as stat_module
import subprocess
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

import pyfuse3
import trio

from casvfs.digest import Digest
from casvfs.errors import REASON_MOUNT_FAILED, CasvfsError, MountError, StoreError
from casvfs.fuse.operations import SNAPSHOT_XATTR, CasOperations
from casvfs.store.base import ContentStore
from casvfs.store.scratch import new_scratch

if TYPE_CHECKING:
    from casvfs.directory import CasDirectory

# what a mount answers once its server has died (ECONNABORTED while it is going away)
_DEAD_SERVER = (errno.ENOTCONN, errno.ECONNABORTED)
_active = threading.Lock()  # pyfuse3 holds one session per process


def clean_stale_mount(mountpoint: str) -> bool:
    """Lazily unmount a dead FUSE mount (ENOTCONN) at *mountpoint*; True if one was found.

    A live mount at *mountpoint* is left alone (and mounting over it fails)."""
    try:
        # statfs always reaches the server; stat may be answered from the kernel's cache
        os.statvfs(mountpoint)
        return False
    except OSError as error:
        if error.errno not in _DEAD_SERVER:
            return False
    for command in (["fusermount3", "-u", "-z", mountpoint], ["umount", "-l", mountpoint]):
        if (
            shutil.which(command[0])
            and subprocess.run(command, capture_output=True, check=False).returncode == 0
        ):
            return True
    raise MountError(f"stale mount at {mountpoint} could not be removed", reason=REASON_MOUNT_FAILED)


def check_mount(store: ContentStore, digest: Digest, mountpoint: str) -> None:
    """Refuse, before anything is mounted, a bad mountpoint (see
    :func:`check_mountpoint`) and a tree whose root ``Directory`` the store
    cannot provide."""
    check_mountpoint(mountpoint)
    try:
        store.get_directory(digest)
    except StoreError as error:
        raise MountError(f"cannot mount {digest}: {error}", reason=REASON_MOUNT_FAILED) from None


def check_mountpoint(mountpoint: str) -> None:
    """Refuse a mountpoint that is missing, not a directory or already a mount
    (a dead one is cleaned up first)."""
    clean_stale_mount(mountpoint)
    try:
        st = os.stat(mountpoint)
    except OSError as error:
        raise MountError(
            f"cannot mount at {mountpoint}: {error.strerror}", reason=REASON_MOUNT_FAILED
        ) from None
    if not stat_module.S_ISDIR(st.st_mode):
        raise MountError(f"cannot mount at {mountpoint}: not a directory", reason=REASON_MOUNT_FAILED)
    if os.path.ismount(mountpoint):
        raise MountError(
            f"cannot mount at {mountpoint}: it is a mount point already (unmount it first)",
            reason=REASON_MOUNT_FAILED,
        )


def _options(writable: bool, allow_other: bool) -> set[str]:
    # default_permissions (pyfuse3's default): the kernel checks modes and owners
    options = set(pyfuse3.default_options)
    options |= {"fsname=casvfs", "subtype=casvfs"}
    if not writable:
        options.add("ro")
    if allow_other:
        options.add("allow_other")
    return options


class Mount:
    """A tree digest mounted at a host directory, served by a thread of this process.

    Use :func:`mount` to make one. Only one mount can be served per process
    (a limit of pyfuse3); run more with ``casvfs mount --background``.
    """

    def __init__(
        self,
        store: ContentStore,
        digest: Digest,
        mountpoint: str,
        *,
        writable: bool = False,
        scratch: str | None = None,
        allow_other: bool = False,
    ) -> None:
        self.mountpoint = os.path.abspath(mountpoint)
        self.writable = writable
        self.allow_other = allow_other
        check_mount(store, digest, self.mountpoint)
        self._own_scratch = scratch is None
        self.scratch = scratch or new_scratch(store.scratch_space())
        self.operations = CasOperations(store, digest, writable=writable, scratch=self.scratch)
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._final: Digest | None = None
        """The digest captured at unmount."""

    def start(self) -> None:
        """Mount and return once the mount is live."""
        if not _active.acquire(blocking=False):
            self._drop_scratch()
            raise MountError("this process already serves a mount", reason=REASON_MOUNT_FAILED)
        try:
            pyfuse3.init(self.operations, self.mountpoint, _options(self.writable, self.allow_other))
        except BaseException as error:
            _active.release()
            self._drop_scratch()
            if isinstance(error, CasvfsError):
                raise
            raise MountError(
                f"cannot mount at {self.mountpoint}: {error}", reason=REASON_MOUNT_FAILED
            ) from None
        self._thread = threading.Thread(target=self._serve, name="casvfs-fuse", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._drop_scratch()
            raise MountError(f"mount at {self.mountpoint} failed: {self._error}", reason=REASON_MOUNT_FAILED)

    def _drop_scratch(self) -> None:
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _serve(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await pyfuse3.main()

        try:
            trio.run(main)
        except BaseException as error:
            self._error = error
        finally:
            self._ready.set()
            pyfuse3.close(unmount=True)
            self.operations.close_files()
            _active.release()

    def get_digest(self) -> Digest:
        """The digest of the tree as the mount shows it now (written files hashed),
        or, once unmounted, as it was at unmount."""
        if self._final is not None:
            return self._final
        if self._token is None or self._thread is None or not self._thread.is_alive():
            raise MountError("the mount is not live", reason=REASON_MOUNT_FAILED)
        return trio.from_thread.run(self.operations.get_digest, trio_token=self._token)

    def unmount(self) -> Digest:
        """Capture the tree, unmount, and return its digest."""
        if self._thread is None:
            raise MountError("not mounted", reason=REASON_MOUNT_FAILED)
        if self._final is not None:
            return self._final
        if self._thread.is_alive():
            final = self.get_digest()
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(pyfuse3.terminate, trio_token=self._token)
            self._thread.join()
        else:
            final = trio.run(self.operations.get_digest)
        self._final = final
        self._drop_scratch()
        return final

    def directory(self) -> CasDirectory:
        """The mounted tree as a :class:`~casvfs.CasDirectory` over the same store,
        at :meth:`get_digest`."""
        # imported here: a FUSE server needs no Directory layer (see casvfs/__init__.py)
        from casvfs.directory import CasDirectory

        return CasDirectory(self.operations.store, self.get_digest())

    def __enter__(self) -> Mount:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.unmount()


@contextlib.contextmanager
def mount(
    store: ContentStore,
    digest: Digest,
    mountpoint: str,
    *,
    writable: bool = False,
    scratch: str | None = None,
    allow_other: bool = False,
) -> Iterator[Mount]:
    """Mount *digest* at *mountpoint* for the duration of a ``with`` block.

    Directories are loaded when looked up, blobs opened when read. With
    *writable*, changes go to a scratch directory (a temporary one unless
    given) and never into the store's objects; :meth:`Mount.get_digest` captures
    the tree as a new digest, while mounted and after the unmount at the end of
    the block. With *allow_other*, users other than the one mounting may use
    the mount (FUSE's ``allow_other``: root, or ``user_allow_other`` in
    ``/etc/fuse.conf``); the kernel checks their access against the modes and
    owners the mount shows.
    """
    handle = Mount(store, digest, mountpoint, writable=writable, scratch=scratch, allow_other=allow_other)
    handle.start()
    try:
        yield handle
    finally:
        handle.unmount()


def serve(
    store: ContentStore,
    digest: Digest,
    mountpoint: str,
    *,
    writable: bool,
    scratch: str | None = None,
    allow_other: bool = False,
) -> Digest:
    """Serve a mount in this thread until SIGINT/SIGTERM or an external unmount;
    return the captured digest. The checks of :func:`check_mount` come first, and
    nothing (no mount, no scratch directory) is left behind on any exit.
    *allow_other* is as for :func:`mount`."""
    check_mount(store, digest, mountpoint)
    operations = CasOperations(
        store, digest, writable=writable, scratch=scratch or new_scratch(store.scratch_space())
    )
    try:
        pyfuse3.init(operations, mountpoint, _options(writable, allow_other))
    except RuntimeError as error:
        if scratch is None:
            shutil.rmtree(operations.scratch, ignore_errors=True)
        raise MountError(f"cannot mount at {mountpoint}: {error}", reason=REASON_MOUNT_FAILED) from None

    async def main() -> Digest:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
        return await operations.get_digest()

    try:
        return trio.run(main)
    finally:
        pyfuse3.close(unmount=True)
        operations.close_files()
        if scratch is None:
            shutil.rmtree(operations.scratch, ignore_errors=True)


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _signal in signals:
            pyfuse3.terminate()
            return


def get_digest(mountpoint: str) -> Digest:
    """Ask the casvfs mount at *mountpoint* (served by any process) for the digest
    of its tree as it is now."""
    try:
        return Digest.parse(os.getxattr(mountpoint, os.fsdecode(SNAPSHOT_XATTR)).decode())
    except OSError as error:
        if error.errno in _DEAD_SERVER:
            problem = "its server is gone"
        elif not os.path.ismount(mountpoint):
            problem = "not mounted"
        elif error.errno in (errno.ENODATA, errno.ENOTSUP):
            problem = "not a casvfs mount"
        else:
            problem = str(error.strerror)
        raise MountError(f"{mountpoint}: {problem}", reason=REASON_MOUNT_FAILED) from None


def unmount(mountpoint: str) -> Digest:
    """Capture the casvfs mount at *mountpoint* (served by any process), unmount it
    and return its digest; its server then exits."""
    digest = get_digest(mountpoint)
    done = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MountError(f"cannot unmount {mountpoint}: {done.stderr.strip()}", reason=REASON_MOUNT_FAILED)
    return digest
