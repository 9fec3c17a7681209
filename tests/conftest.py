"""Shared fixtures: stores, and pairs of Directory implementations on the same tree."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from casvfs import ContentStore, Directory, LocalStore, MemoryStore
from tests.remote_servers import buildgrid_server, casd_server, server  # noqa: F401 - shared fixtures
from tests.trees import Spec

MakeDirectory = Callable[[Spec], Directory]


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: object) -> ContentStore:
    """Each kind of store."""
    if request.param == "memory":
        return MemoryStore()
    return LocalStore(os.path.join(str(tmp_path), "store"))
