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


@pytest.fixture(params=["stateless", "handles"])
def fuse_open_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Read-only mounts both ways: stateless (the patched pyfuse3 setup installs)
    and with open/opendir handles (as on a stock pyfuse3). The switch is an
    environment variable, so mounts served by child processes follow it too."""
    from casvfs.fuse.operations import STATELESS_ENV, stateless_open_available

    if request.param == "stateless":
        monkeypatch.delenv(STATELESS_ENV, raising=False)
        # setup installs the patched pyfuse3: a stock one here is a broken setup
        assert stateless_open_available(), "pyfuse3 lacks the stateless-open patch: run scripts/setup.sh"
    else:
        monkeypatch.setenv(STATELESS_ENV, "0")
    return str(request.param)


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
