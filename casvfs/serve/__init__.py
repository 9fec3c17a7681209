"""``casvfs serve``: Remote Asset Fetch/Push, and CAS, ByteStream and
Capabilities over a local store, in one gRPC server (see :mod:`casvfs.serve.server`).

Needs the ``remote`` extra (``grpcio``, ``prometheus-client``).
"""

from casvfs.serve.references import ActionCacheReferences, action_key
from casvfs.serve.server import REFERENCE_BACKENDS, ReferenceBackend, ServeConfig, Server, serve

__all__ = [
    "REFERENCE_BACKENDS",
    "ActionCacheReferences",
    "ReferenceBackend",
    "ServeConfig",
    "Server",
    "action_key",
    "serve",
]
