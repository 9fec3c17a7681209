"""Shared fixtures: stores, and pairs of Directory implementations on the same tree."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from casvfs import CasDirectory, ContentStore, Directory, LocalStore, MemoryStore, OsDirectory
from tests.remote_servers import buildgrid_server, casd_server, server  # noqa: F401 - shared fixtures
from tests.trees import Spec, build_host

MakeDirectory = Callable[[Spec], Directory]


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: object) -> ContentStore:
    """Each kind of store."""
    if request.param == "memory":
        return MemoryStore()
    return LocalStore(os.path.join(str(tmp_path), "store"))


@pytest.fixture(params=["os", "cas"])
def make_directory(request: pytest.FixtureRequest, tmp_path: object) -> MakeDirectory:
    """A factory building a tree from a spec on one implementation (parametrised
    over both, so a test using it runs the same steps on each)."""
    counter = iter(range(1_000_000))

    def make(spec: Spec) -> Directory:
        host = build_host(os.path.join(str(tmp_path), f"spec{next(counter)}"), spec)
        if request.param == "os":
            return OsDirectory(host)
        tree = CasDirectory(LocalStore(os.path.join(str(tmp_path), "store")))
        tree.import_files(host)
        return tree

    return make
