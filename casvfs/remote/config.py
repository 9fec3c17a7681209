"""Remote configuration in the shape BuildStream users know.

A *project* configuration recommends remotes; a *user* configuration can augment
or override them, globally or for one project by name::

    # project configuration (e.g. casvfs.yaml beside a project)
    name: foo
    remotes:
    - url: https://cache.example.com:11001
      instance-name: main

    # user configuration ($XDG_CONFIG_HOME/casvfs/config.yaml)
    remotes:
      override-project-remotes: false   # true: ignore what projects recommend
      servers:
      - url: https://cache.internal:11002
        push: true
        type: all                       # or storage (a CAS), index (Remote Asset)
        auth:
          server-cert: ca.crt           # paths are relative to this file
          client-cert: client.crt
          client-key: client.key
          access-token: token.txt       # a file holding a bearer token
    projects:
      foo:
        remotes:
          override-project-remotes: true
          servers: [...]

A remote's ``type`` says what it serves, as in BuildStream: ``storage`` a CAS,
``index`` a Remote Asset server (which keeps names, not blobs), ``all`` both.

The resolved list is ordered: the user's per-project servers, then the user's
global servers, then (unless either section overrides them) the project's. Reads
try remotes in that order; pushes go only to remotes with ``push: true``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from casvfs.errors import REASON_INVALID_CONFIG, ConfigError

SCHEMES = ("http", "https", "grpc", "grpcs", "unix")
"""URL schemes of a remote: ``http``/``grpc`` are plain TCP, ``https``/``grpcs``
use TLS, ``unix:PATH`` is a local socket."""
TLS_SCHEMES = ("https", "grpcs")

REMOTE_TYPES = ("all", "index", "storage")
"""What a remote serves, as BuildStream says it: ``storage`` a CAS, ``index`` a
Remote Asset server, ``all`` both on one address."""

DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class RemoteAuth:
    """Credentials for one remote: host file paths, never the secrets themselves,
    so that printing a configuration cannot leak them."""

    server_cert: str | None = None
    """PEM root certificate(s) to trust instead of the system's."""
    client_cert: str | None = None
    """PEM client certificate, for servers that require one (with *client_key*)."""
    client_key: str | None = None
    """PEM private key of *client_cert*."""
    access_token: str | None = None
    """A file holding a token sent as ``authorization: Bearer TOKEN``."""


@dataclass(frozen=True)
class RemoteSpec:
    """One remote CAS: where it is, how to reach it, whether to push to it.

    :param url: ``http://HOST:PORT`` or ``grpc://`` (plain), ``https://`` or
        ``grpcs://`` (TLS), ``unix:/path``.
    :param instance_name: the REAPI instance name (often empty).
    :param push: whether uploads go to this remote.
    :param timeout: seconds allowed for each call (transfers of big blobs also get
        time in proportion to their size).
    :param retries: attempts after the first on ``UNAVAILABLE`` and
        ``RESOURCE_EXHAUSTED``, with exponential backoff.
    :param type: ``all`` (CAS and Remote Asset), ``storage`` (a CAS only) or
        ``index`` (a Remote Asset server only), see :data:`REMOTE_TYPES`.
    """

    url: str
    instance_name: str = ""
    push: bool = False
    auth: RemoteAuth = field(default_factory=RemoteAuth)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    type: str = "all"

    def __post_init__(self) -> None:
        target(self.url)  # validates the URL
        if self.type not in REMOTE_TYPES:
            raise _invalid(f"remote {self.url}: type must be one of {', '.join(REMOTE_TYPES)}")
        if self.auth.client_cert is not None and self.auth.client_key is None:
            raise _invalid(f"remote {self.url}: client-cert needs client-key")
        if self.auth.client_key is not None and self.auth.client_cert is None:
            raise _invalid(f"remote {self.url}: client-key needs client-cert")
        if not self.uses_tls and (self.auth.server_cert or self.auth.client_cert):
            raise _invalid(f"remote {self.url}: certificates need an https:// or grpcs:// URL")
        if self.auth.access_token is not None and not (self.uses_tls or _is_local(self.url)):
            raise _invalid(
                f"remote {self.url}: an access-token is sent only over TLS (https://, grpcs://) "
                "or to this machine (unix:, 127.0.0.1, localhost)"
            )
        if self.timeout <= 0 or self.retries < 0:
            raise _invalid(f"remote {self.url}: timeout must be positive and retries not negative")

    @property
    def is_storage(self) -> bool:
        """Whether the remote serves a CAS (type ``all`` or ``storage``)."""
        return self.type != "index"

    @property
    def is_index(self) -> bool:
        """Whether the remote serves Remote Asset (type ``all`` or ``index``)."""
        return self.type != "storage"

    @property
    def uses_tls(self) -> bool:
        """Whether the connection is encrypted."""
        return urlsplit(self.url).scheme in TLS_SCHEMES


def _is_local(url: str) -> bool:
    """Whether *url* names this machine (a token may travel in clear there)."""
    parts = urlsplit(url)
    return parts.scheme == "unix" or parts.hostname in ("127.0.0.1", "::1", "localhost")


def target(url: str) -> str:
    """The gRPC target of a remote URL (``host:port`` or ``unix:path``)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise _invalid(f"remote URL {url!r}: the scheme must be one of {', '.join(SCHEMES)}")
    if parts.scheme == "unix":
        path = parts.path or parts.netloc
        if not path:
            raise _invalid(f"remote URL {url!r} names no socket")
        return f"unix:{path}"
    if parts.username is not None or parts.password is not None:
        raise _invalid(f"remote URL {parts.hostname}: put credentials in auth, not in the URL")
    if not parts.hostname:
        raise _invalid(f"remote URL {url!r} names no host")
    try:
        port = parts.port
    except ValueError:
        raise _invalid(f"remote URL {url!r} has an invalid port") from None
    if port is None:
        port = 443 if parts.scheme in TLS_SCHEMES else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


@dataclass(frozen=True)
class RemoteConfig:
    """The remotes in the order reads try them."""

    remotes: tuple[RemoteSpec, ...] = ()

    @property
    def push_remotes(self) -> tuple[RemoteSpec, ...]:
        """The remotes uploads go to."""
        return tuple(remote for remote in self.remotes if remote.push)

    @property
    def storage_remotes(self) -> tuple[RemoteSpec, ...]:
        """The remotes that serve a CAS (blobs are read from and pushed to these)."""
        return tuple(remote for remote in self.remotes if remote.is_storage)

    @property
    def index_remotes(self) -> tuple[RemoteSpec, ...]:
        """The remotes that serve Remote Asset (assets are fetched from and pushed to these)."""
        return tuple(remote for remote in self.remotes if remote.is_index)

    @classmethod
    def load(
        cls,
        user: str | os.PathLike[str] | None = None,
        project: str | os.PathLike[str] | None = None,
        *,
        extra: Sequence[RemoteSpec] = (),
    ) -> RemoteConfig:
        """Resolve the remotes from a user and a project configuration file (either
        may be None), with *extra* remotes (from the command line) first."""
        user_data = _read_yaml(user) if user is not None else {}
        project_data = _read_yaml(project) if project is not None else {}
        return cls.resolve(
            user_data,
            project_data,
            user_base=os.path.dirname(os.path.abspath(user)) if user is not None else os.getcwd(),
            project_base=os.path.dirname(os.path.abspath(project)) if project is not None else os.getcwd(),
            extra=extra,
        )

    @classmethod
    def resolve(
        cls,
        user: Mapping[str, Any],
        project: Mapping[str, Any],
        *,
        user_base: str,
        project_base: str,
        extra: Sequence[RemoteSpec] = (),
    ) -> RemoteConfig:
        """Resolve already-parsed configuration mappings; relative paths in each are
        taken from *user_base* and *project_base*."""
        _only_keys(user, "user configuration", ("remotes", "projects"))
        _only_keys(project, "project configuration", ("name", "remotes"))
        project_remotes = _server_list(project.get("remotes", []), "project remotes", project_base)
        name = project.get("name")
        sections: list[Any] = []
        projects = user.get("projects", {})
        if not isinstance(projects, Mapping):
            raise _invalid("user configuration: projects must be a mapping of project names")
        if name is not None and name in projects:
            overrides = projects[name]
            if not isinstance(overrides, Mapping):
                raise _invalid(f"user configuration: projects.{name} must be a mapping")
            _only_keys(overrides, f"projects.{name}", ("remotes",))
            if "remotes" in overrides:
                sections.append((overrides["remotes"], f"projects.{name}.remotes"))
        if "remotes" in user:
            sections.append((user["remotes"], "remotes"))
        remotes = list(extra)
        override = False
        for section, where in sections:
            if not isinstance(section, Mapping):
                raise _invalid(f"user configuration: {where} must be a mapping with servers")
            _only_keys(section, where, ("override-project-remotes", "servers"))
            flag = section.get("override-project-remotes", False)
            if not isinstance(flag, bool):
                raise _invalid(f"user configuration: {where}.override-project-remotes must be true or false")
            override = override or flag
            remotes += _server_list(section.get("servers", []), f"{where}.servers", user_base)
        if not override:
            remotes += project_remotes
        unique: dict[tuple[str, str], RemoteSpec] = {}
        for remote in remotes:
            unique.setdefault((remote.url, remote.instance_name), remote)
        return cls(tuple(unique.values()))


def parse_remote(data: Mapping[str, Any], base: str) -> RemoteSpec:
    """One remote from its configuration mapping; relative paths are taken from *base*."""
    if not isinstance(data, Mapping):
        raise _invalid("a remote must be a mapping with a url")
    _only_keys(data, "remote", ("url", "type", "instance-name", "push", "auth", "timeout", "retries"))
    url = data.get("url")
    if not isinstance(url, str):
        raise _invalid("a remote needs a url")
    instance = data.get("instance-name", "")
    push = data.get("push", False)
    kind = data.get("type", "all")
    if not isinstance(instance, str) or not isinstance(push, bool) or not isinstance(kind, str):
        raise _invalid(f"remote {url}: instance-name and type must be strings and push true or false")
    auth = data.get("auth", {})
    if not isinstance(auth, Mapping):
        raise _invalid(f"remote {url}: auth must be a mapping")
    keys = ("server-cert", "client-cert", "client-key", "access-token")
    _only_keys(auth, f"remote {url} auth", keys)
    paths: dict[str, str | None] = {}
    for key in keys:
        value = auth.get(key)
        if value is not None and not isinstance(value, str):
            raise _invalid(f"remote {url}: auth {key} must be a file path")
        paths[key] = os.path.join(base, value) if value is not None else None
    timeout = data.get("timeout", DEFAULT_TIMEOUT)
    retries = data.get("retries", DEFAULT_RETRIES)
    if not isinstance(timeout, int | float) or not isinstance(retries, int):
        raise _invalid(f"remote {url}: timeout and retries must be numbers")
    return RemoteSpec(
        url,
        instance_name=instance,
        push=push,
        auth=RemoteAuth(
            server_cert=paths["server-cert"],
            client_cert=paths["client-cert"],
            client_key=paths["client-key"],
            access_token=paths["access-token"],
        ),
        timeout=float(timeout),
        retries=retries,
        type=kind,
    )


def _server_list(data: Any, where: str, base: str) -> list[RemoteSpec]:
    if not isinstance(data, list):
        raise _invalid(f"{where} must be a list of remotes")
    return [parse_remote(item, base) for item in data]


def _only_keys(data: Mapping[str, Any], where: str, allowed: Sequence[str]) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise _invalid(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def _read_yaml(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    import yaml  # only configuration files need PyYAML

    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as error:
        raise _invalid(f"cannot read {os.fspath(path)}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise _invalid(f"{os.fspath(path)} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _invalid(f"{os.fspath(path)} must hold a mapping")
    return data


def _invalid(message: str) -> ConfigError:
    return ConfigError(message, reason=REASON_INVALID_CONFIG)
