"""A client of one remote's REAPI ActionCache: ``GetActionResult`` and
``UpdateActionResult``."""

from __future__ import annotations

from casvfs.digest import Digest
from casvfs.errors import REASON_BLOB_MISSING, RemoteError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote.channel import Channel
from casvfs.remote.config import RemoteSpec

ACTION_CACHE = "build.bazel.remote.execution.v2.ActionCache"


class ActionCacheClient:
    """The ActionCache service of the remote *spec* (a connection of its own)."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.channel = Channel(spec)

    def __repr__(self) -> str:
        return f"ActionCacheClient({self.spec.url!r})"

    def close(self) -> None:
        """Close the connection."""
        self.channel.close()

    def get(self, action: Digest) -> pb.ActionResult | None:
        """The result cached for the action *action*, or None if there is none."""
        request = pb.GetActionResultRequest(
            instance_name=self.spec.instance_name, action_digest=action.to_proto()
        )
        try:
            return self.channel.unary(
                ACTION_CACHE, "GetActionResult", request, pb.ActionResult, digest=action
            )
        except RemoteError as error:
            if error.reason == REASON_BLOB_MISSING:  # NOT_FOUND: nothing cached
                return None
            raise

    def update(self, action: Digest, result: pb.ActionResult) -> None:
        """Cache *result* for the action *action*."""
        request = pb.UpdateActionResultRequest(
            instance_name=self.spec.instance_name, action_digest=action.to_proto(), action_result=result
        )
        self.channel.unary(ACTION_CACHE, "UpdateActionResult", request, pb.ActionResult, digest=action)
