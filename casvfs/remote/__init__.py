"""Remote CAS servers (REAPI v2) and the layered store that fetches from them.

Needs the ``remote`` extra (``grpcio``, ``PyYAML``): ``pip install casvfs[remote]``.
"""

from casvfs.remote.actioncache import ActionCacheClient
from casvfs.remote.asset import Asset, AssetClient
from casvfs.remote.client import CasClient, plan_batches
from casvfs.remote.config import REMOTE_TYPES, RemoteAuth, RemoteConfig, RemoteSpec
from casvfs.remote.layered import LayeredStore
from casvfs.remote.transfer import PushReport

__all__ = [
    "REMOTE_TYPES",
    "ActionCacheClient",
    "Asset",
    "AssetClient",
    "CasClient",
    "LayeredStore",
    "PushReport",
    "RemoteAuth",
    "RemoteConfig",
    "RemoteSpec",
    "plan_batches",
]
