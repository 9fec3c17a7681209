"""Remote CAS servers (REAPI v2) and the layered store that fetches from them.

Needs the ``remote`` extra (``grpcio``, ``PyYAML``): ``pip install casvfs[remote]``.
"""

from casvfs.remote.client import CasClient, plan_batches
from casvfs.remote.config import RemoteAuth, RemoteConfig, RemoteSpec
from casvfs.remote.layered import LayeredStore
from casvfs.remote.transfer import PushReport

__all__ = [
    "CasClient",
    "LayeredStore",
    "PushReport",
    "RemoteAuth",
    "RemoteConfig",
    "RemoteSpec",
    "plan_batches",
]
