"""Live roots: the trees processes are using right now (mounted trees and what
their captures made), which garbage collection must keep though no reference
names them.

Each process records its roots in a file of its own under the store's ``roots/``,
named after its pid; a file whose process is gone no longer counts (and is
removed), so a killed mount holds nothing for ever.
"""

from __future__ import annotations

import contextlib
import os
import uuid

from casvfs.digest import Digest
from casvfs.errors import StoreError, os_errors
from casvfs.store.scratch import process_alive


class LiveRoots:
    """The live roots of the store whose directory is *root*."""

    def __init__(self, root: str) -> None:
        self.directory = os.path.join(root, "roots")

    def register(self, digest: Digest) -> str:
        """Record *digest* as a root of this process; return the record's path
        (for :meth:`add` and :meth:`release`)."""
        path = os.path.join(self.directory, f"{os.getpid()}-{uuid.uuid4().hex}")
        with os_errors(f"cannot record a live root in {self.directory}", kind=StoreError):
            os.makedirs(self.directory, exist_ok=True)
            with open(path, "w", encoding="ascii") as stream:
                stream.write(f"{digest}\n")
        return path

    def add(self, record: str, digest: Digest) -> None:
        """Add *digest* to the roots of *record* (a capture of a mounted tree)."""
        with (
            os_errors(f"cannot record a live root in {record}", kind=StoreError),
            open(record, "a", encoding="ascii") as stream,
        ):
            stream.write(f"{digest}\n")

    def release(self, record: str) -> None:
        """Forget the roots of *record* (the mount is gone)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record)

    def live(self) -> list[Digest]:
        """Every root of a running process; the records of dead ones are removed."""
        found: list[Digest] = []
        with os_errors(f"cannot read the live roots in {self.directory}", kind=StoreError):
            names = sorted(os.listdir(self.directory)) if os.path.isdir(self.directory) else []
            for name in names:
                path = os.path.join(self.directory, name)
                owner = name.split("-", 1)[0]
                if not owner.isdigit() or not process_alive(int(owner)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    continue
                with contextlib.suppress(FileNotFoundError), open(path, encoding="ascii") as stream:
                    for line in stream:
                        with contextlib.suppress(ValueError):
                            found.append(Digest.parse(line))
        return found
