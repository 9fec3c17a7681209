"""Where ``casvfs serve`` keeps its references: the embedded refs index
(:class:`~casvfs.refs.RefIndex`, which needs nothing here), or the REAPI
ActionCache of the CAS it fronts, so that any number of servers in front of one
BuildGrid share every asset and keep no state of their own.

In the ActionCache, the references of one URI are one ``ActionResult`` under the
digest of an ``Action`` made from the URI alone; the list itself (JSON, see
:func:`casvfs.refs.dumps`) is the result's inline ``stdout_raw``, so a lookup is
one ``GetActionResult`` and the result references no blob a cache could find
missing. Recording reads the list, merges and writes it back: two servers
recording under the same URI in the same instant may lose one of the two
(the newer push wins, as it does for one server).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from casvfs.digest import Digest, digest_bytes, digest_message
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.refs import Ref, check_uri, dumps, loads, utc_now
from casvfs.remote.actioncache import ActionCacheClient

_KEY_PREFIX = b"casvfs.asset.v1\0"


def action_key(uri: str) -> Digest:
    """The Action digest the references of *uri* are cached under."""
    command = digest_bytes(_KEY_PREFIX + check_uri(uri).encode())
    return digest_message(pb.Action(command_digest=command.to_proto(), do_not_cache=False))


class ActionCacheReferences:
    """References kept in the ActionCache behind *client*."""

    def __init__(self, client: ActionCacheClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"ActionCacheReferences({self.client.spec.url!r})"

    def _load(self, uri: str) -> list[Ref]:
        result = self.client.get(action_key(uri))
        if result is None:
            return []
        try:
            refs = loads(result.stdout_raw)
        except ValueError:
            return []  # not ours (or damaged): as good as absent
        return [ref for ref in refs if ref.uri == uri]

    def entries(self, uris: Iterable[str]) -> list[Ref]:
        """Every reference recorded under any of *uris*."""
        return [ref for uri in dict.fromkeys(uris) for ref in self._load(uri)]

    def record(self, refs: Iterable[Ref]) -> None:
        """Merge *refs* into the lists of their URIs, dropping expired entries."""
        by_uri: dict[str, list[Ref]] = defaultdict(list)
        for ref in refs:
            by_uri[ref.uri].append(ref)
        now = utc_now()
        for uri, new in by_uri.items():
            replaced = {(ref.kind, ref.qualifiers) for ref in new}
            kept = [
                ref
                for ref in self._load(uri)
                if (ref.kind, ref.qualifiers) not in replaced and not ref.expired(now)
            ]
            result = pb.ActionResult(exit_code=0, stdout_raw=dumps(kept + new))
            self.client.update(action_key(uri), result)
