"""Files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import BinaryIO

from casvfs.errors import CasvfsError, os_error, os_errors


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, kind: type[CasvfsError]) -> Iterator[BinaryIO]:
    """A binary file to write that becomes *path* only when the ``with`` block ends
    without an exception (Ctrl-C included): it is written under a temporary name
    in the same directory and renamed over *path*; on failure the temporary file
    is removed and *path* is left as it was. OS errors become *kind* errors
    naming *path*."""
    target = os.fspath(path)
    head, tail = os.path.split(os.path.abspath(target))
    temporary = os.path.join(head, f".{tail}.casvfs-{os.getpid()}.tmp")
    with os_errors(f"cannot write {target}", kind=kind):
        stream = open(temporary, "xb")  # noqa: SIM115 - closed below, before the rename
    try:
        yield stream
        stream.close()
        os.rename(temporary, target)
    except BaseException as error:
        stream.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise os_error(error, f"cannot write {target}", kind=kind) from None
        raise
