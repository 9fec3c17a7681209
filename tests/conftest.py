"""Shared fixtures: stores, and pairs of Directory implementations on the same tree."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from casvfs import ContentStore, Directory, LocalStore, MemoryStore
from tests.mounts import mounted
from tests.remote_servers import buildgrid_server, casd_server, server  # noqa: F401 - shared fixtures
from tests.trees import Spec

MakeDirectory = Callable[[Spec], Directory]


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: object) -> ContentStore:
    """Each kind of store."""
    if request.param == "memory":
        return MemoryStore()
    return LocalStore(os.path.join(str(tmp_path), "store"))


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    """An empty directory to mount on; whatever is mounted there at the end of the
    test (a dead mount too) is lazily unmounted, so no test leaves one behind."""
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    for _ in range(3):
        if not mounted(path):
            break
        subprocess.run(["fusermount3", "-u", "-z", str(path)], check=False)
