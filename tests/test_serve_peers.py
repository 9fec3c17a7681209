"""``casvfs serve`` with real peers: in front of BuildGrid (references in its
ActionCache, shared by two servers), and casvfs's asset client against
buildbox-casd's own Remote Asset service."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from casvfs import CasDirectory, LocalStore
from casvfs.refs import Ref, utc_now
from casvfs.remote import AssetClient, LayeredStore, RemoteConfig, RemoteSpec
from casvfs.remote.publish import asset_clients, push_asset
from peers import buildgrid as peer_buildgrid
from peers.casvfs_serve import running_serve
from tests.remote_servers import require_buildgrid


@pytest.fixture(scope="module")
def buildgrid_with_cache(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[peer_buildgrid.BuildGridServer]:
    require_buildgrid()
    with peer_buildgrid.running_buildgrid(tmp_path_factory.mktemp("bgd-ac"), action_cache=True) as server:
        yield server


def _tree(store: LocalStore, seed: bytes) -> CasDirectory:
    tree = CasDirectory(store)
    for i in range(5):
        with tree.open_directory(f"d{i}", create=True).open_file("f", mode="wb") as stream:
            stream.write(seed + bytes([i]) * 100)
    return tree


def test_two_servers_in_front_of_one_buildgrid_share_every_asset(
    buildgrid_with_cache: peer_buildgrid.BuildGridServer, tmp_path: Path
) -> None:
    cas = f"http://{buildgrid_with_cache.address}"
    arguments = ("--cas", cas, "--references", "action-cache")
    with (
        running_serve(tmp_path / "one", *arguments) as one,
        running_serve(tmp_path / "two", *arguments) as two,
    ):
        # the client's configuration: BuildGrid stores, the first server indexes
        config = RemoteConfig(
            (RemoteSpec(cas, push=True, type="storage"), RemoteSpec(one.url, push=True, type="index"))
        )
        layered = LayeredStore(LocalStore(tmp_path / "client"), config)
        tree = _tree(layered.local, b"shared")
        log = layered.local.put_bytes(b"a log")
        ref = Ref("urn:fdc:example:artifact:p/e/k", "directory", tree.get_digest(), (("k", "v"),), (log,))
        report = push_asset(layered, asset_clients(config, push=True), ref)
        assert report.indexed == (one.url,) and report.content[0].missing == 12
        # the second server has never seen the push, and keeps no state: it answers from the ActionCache
        found = AssetClient(RemoteSpec(two.url)).fetch_directory(ref.uri, {"k": "v"})
        assert found is not None and found.digest == tree.get_digest()
        assert AssetClient(RemoteSpec(two.url)).fetch_directory(ref.uri, {"k": "other"}) is None
        assert not os.path.exists(two.store / "refs.sqlite")
        # a second asset under the same URI with other qualifiers joins the list
        other = _tree(layered.local, b"other")
        push_asset(layered, [AssetClient(RemoteSpec(two.url))], Ref(ref.uri, "directory", other.get_digest()))
        first = AssetClient(RemoteSpec(one.url))
        assert first.fetch_directory(ref.uri, {"k": "v"}).digest == tree.get_digest()  # type: ignore[union-attr]
        assert first.fetch_directory(ref.uri).digest == other.get_digest()  # type: ignore[union-attr]
        # completeness is checked in BuildGrid's CAS: a blob gone there is a miss
        peer_buildgrid.object_path(buildgrid_with_cache, log.hash).unlink()
        assert first.fetch_directory(ref.uri, {"k": "v"}) is None
        # and a push naming content BuildGrid lacks is refused
        with pytest.raises(Exception, match="not in the CAS"):
            AssetClient(RemoteSpec(one.url, retries=0)).push_blob("urn:b", log)


def test_casvfs_client_pushes_and_fetches_assets_on_buildbox_casd(tmp_path: Path) -> None:
    """buildbox-casd serves Remote Asset from its own asset store (exact qualifier
    matching, misses as the call's NOT_FOUND, content not checked)."""
    from peers.casd import running_casd
    from tests.remote_servers import require_casd

    require_casd()
    with running_casd(tmp_path / "casd") as address:
        url = f"http://{address}"
        layered = LayeredStore(LocalStore(tmp_path / "client"), [RemoteSpec(url, push=True)])
        tree = _tree(layered.local, b"casd")
        blob = layered.local.put_bytes(b"a blob")
        clients = [AssetClient(RemoteSpec(url, push=True))]
        push_asset(layered, clients, Ref("urn:casd:tree", "directory", tree.get_digest(), (("q", "1"),)))
        push_asset(layered, clients, Ref("urn:casd:blob", "blob", blob, references_blobs=(blob,)))
        client = clients[0]
        found = client.fetch_directory("urn:casd:tree", {"q": "1"})
        assert found is not None and found.digest == tree.get_digest() and found.uri == "urn:casd:tree"
        assert dict(found.qualifiers) == {"q": "1"}
        blob_found = client.fetch_blob(["urn:unknown", "urn:casd:blob"])
        assert blob_found is not None and blob_found.digest == blob
        assert client.fetch_blob("urn:unknown") is None  # NOT_FOUND as the RPC's status
        assert client.fetch_directory("urn:casd:blob") is None  # a blob asset is not a directory
        soon = utc_now() + datetime.timedelta(hours=1)
        client.push_blob("urn:casd:expiring", blob, expire_at=soon)
        expiring = client.fetch_blob("urn:casd:expiring")
        assert expiring is not None and expiring.expires_at == soon
        client.push_blob("urn:casd:expired", blob, expire_at=utc_now() - datetime.timedelta(seconds=1))
        assert client.fetch_blob("urn:casd:expired") is None
        # what casd answered is a tree that a fresh store pulls from casd's CAS
        fresh = LayeredStore(LocalStore(tmp_path / "fresh"), [RemoteSpec(url)])
        fresh.pull(found.digest)
        copy = CasDirectory(fresh.local, found.digest)
        assert copy.open_file("d3/f", mode="rb").read() == b"casd" + b"\3" * 100
