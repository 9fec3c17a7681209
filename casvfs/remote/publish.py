"""Assets across the configured remotes: fetch from the first ``index`` remote that
knows one, and push one the safe way round: content to the ``storage`` remotes
first, then the name to the ``index`` remotes, so no server ever names content it
lacks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from casvfs.digest import Digest
from casvfs.errors import REASON_NO_REMOTE, StoreError
from casvfs.refs import Kind, Ref
from casvfs.remote.asset import Asset, AssetClient, QualifierInput
from casvfs.remote.config import RemoteConfig
from casvfs.remote.layered import LayeredStore
from casvfs.remote.transfer import PushReport, push_tree


@dataclass(frozen=True)
class AssetPushReport:
    """What :func:`push_asset` did: the content sent to each storage remote, and
    the index remotes that recorded the name."""

    content: tuple[PushReport, ...]
    indexed: tuple[str, ...]


def asset_clients(config: RemoteConfig, *, push: bool = False) -> list[AssetClient]:
    """Clients of the ``index`` remotes (only those marked ``push`` if *push*);
    ``no-remote`` if there is none."""
    specs = [spec for spec in config.index_remotes if spec.push or not push]
    if not specs:
        what = "with push: true " if push else ""
        raise StoreError(
            f"no Remote Asset remote (type all or index) {what}is configured", reason=REASON_NO_REMOTE
        )
    return [AssetClient(spec) for spec in specs]


def fetch_asset(
    clients: Sequence[AssetClient],
    uris: str | Sequence[str],
    qualifiers: QualifierInput = (),
    *,
    kind: Kind = "directory",
) -> Asset | None:
    """The first answer of *clients*, in order, for *uris*; None if none has it."""
    for client in clients:
        found = client.fetch(kind, uris, qualifiers)
        if found is not None:
            return found
    return None


def _content(store: LayeredStore, ref: Ref) -> list[Digest]:
    blobs, trees = ref.content
    wanted: dict[Digest, None] = dict.fromkeys(blobs)
    for root in trees:
        wanted.update(dict.fromkeys(store.tree_blobs(root, directories=True)))
    return list(wanted)


def push_asset(
    store: LayeredStore, clients: Iterable[AssetClient], ref: Ref, *, also: Sequence[str] = ()
) -> AssetPushReport:
    """Push what *ref* names (its blob or tree, whole, and its reference lists)
    to the storage remotes marked ``push``, then *ref* itself to *clients*,
    under its URI and the URIs *also* (one request: the content is checked once)."""
    digests = _content(store, ref)
    reports = tuple(push_tree(client, store, digests) for client in store.remotes if client.spec.push)
    indexed = []
    for client in clients:
        client.push(
            ref.kind,
            [ref.uri, *also],
            ref.digest,
            ref.qualifiers,
            expire_at=ref.expire_at,
            references_blobs=ref.references_blobs,
            references_directories=ref.references_directories,
        )
        indexed.append(client.spec.url)
    return AssetPushReport(reports, tuple(indexed))
