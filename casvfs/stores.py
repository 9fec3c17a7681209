"""Opening a store the way the ``casvfs`` command does: a local store directory,
behind the remotes that options and configuration files name.

Only a spec with remotes needs the ``remote`` extra (grpc), and only when opened.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from casvfs.errors import REASON_NO_REMOTE, StoreError
from casvfs.store import ContentStore, LocalStore

if TYPE_CHECKING:
    from casvfs.remote import LayeredStore, RemoteConfig


def default_store_dir() -> str:
    """``$CASVFS_STORE``, else ``$XDG_CACHE_HOME/casvfs``, else ``~/.cache/casvfs``."""
    if os.environ.get("CASVFS_STORE"):
        return os.environ["CASVFS_STORE"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "casvfs")


def default_config_file() -> str | None:
    """``$CASVFS_CONFIG``, else ``$XDG_CONFIG_HOME/casvfs/config.yaml`` (or
    ``~/.config/…``) if that file exists, else None."""
    if os.environ.get("CASVFS_CONFIG"):
        return os.environ["CASVFS_CONFIG"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = os.path.join(base, "casvfs", "config.yaml")
    return path if os.path.exists(path) else None


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(path)


@dataclass(frozen=True)
class StoreSpec:
    """Which store to open: the local store directory *path* and the remotes in
    front of it — the URLs *remotes* (instance *instance_name*, pushed to), then
    those of the user configuration *config* and the project configuration
    *project_config* (see :meth:`casvfs.remote.RemoteConfig.load`).

    Paths are made absolute when the spec is made, so a spec handed to another
    process (:meth:`to_json`) opens the same store there.
    """

    path: str = field(default_factory=default_store_dir)
    remotes: tuple[str, ...] = ()
    instance_name: str = ""
    config: str | None = None
    project_config: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.path.abspath(self.path))
        object.__setattr__(self, "remotes", tuple(self.remotes))
        object.__setattr__(self, "config", _absolute(self.config))
        object.__setattr__(self, "project_config", _absolute(self.project_config))

    @property
    def has_remotes(self) -> bool:
        """Whether the spec may name remotes (configuration files are read only on open)."""
        return bool(self.remotes or self.config or self.project_config)

    def open_local(self) -> LocalStore:
        """The local store alone."""
        return LocalStore(self.path)

    def open(self) -> ContentStore:
        """The local store, behind the configured remotes if there are any."""
        if not self.has_remotes:
            return self.open_local()
        layered = self._layered()
        return layered if layered is not None else self.open_local()

    def open_remote(self) -> LayeredStore:
        """The local store behind its remotes; ``no-remote`` if none is configured."""
        layered = self._layered() if self.has_remotes else None
        if layered is None:
            raise StoreError(
                "no remote is configured (use --remote URL or a configuration file)",
                reason=REASON_NO_REMOTE,
            )
        return layered

    def remote_config(self) -> RemoteConfig:
        """The remotes the spec names: the ``remotes`` URLs first (pushed to), then
        those of the configuration files. Needs the ``remote`` extra."""
        try:
            from casvfs.remote import RemoteConfig, RemoteSpec
        except ImportError as error:
            raise StoreError(
                f"remotes need the remote extra (pip install 'casvfs[remote]'): {error}",
                reason=REASON_NO_REMOTE,
            ) from None
        extra = [RemoteSpec(url, instance_name=self.instance_name, push=True) for url in self.remotes]
        return RemoteConfig.load(self.config, self.project_config, extra=extra)

    def _layered(self) -> LayeredStore | None:
        config = self.remote_config()  # first: it says when the remote extra is missing
        from casvfs.remote import LayeredStore

        return LayeredStore(self.open_local(), config) if config.storage_remotes else None

    def to_json(self) -> str:
        """The spec as a JSON object (see :meth:`from_json`)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StoreSpec:
        """The spec :meth:`to_json` wrote."""
        data = json.loads(text)
        return cls(
            path=data["path"],
            remotes=tuple(data["remotes"]),
            instance_name=data["instance_name"],
            config=data["config"],
            project_config=data["project_config"],
        )
