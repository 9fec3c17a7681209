"""One named reference: a URI and qualifiers naming a blob or a tree, with the
other content it keeps alive and when it expires (a Remote Asset, held locally)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from casvfs.digest import Digest

Kind = Literal["blob", "directory"]
"""What a reference names: a blob, or the root ``Directory`` of a tree."""
KINDS: tuple[Kind, ...] = ("blob", "directory")

Match = Literal["subset", "exact"]
"""How asked-for qualifiers meet recorded ones: ``subset`` finds a reference whose
qualifiers include every one asked for (what BuildStream needs: it fetches with
fewer qualifiers than it pushes), ``exact`` only one with the same set."""
MATCHES: tuple[Match, ...] = ("subset", "exact")

Qualifiers = tuple[tuple[str, str], ...]
"""Qualifiers as ``(name, value)`` pairs sorted by name, each name once."""


def utc_now() -> datetime.datetime:
    """The current time, UTC, as references record it (microseconds)."""
    return datetime.datetime.now(datetime.UTC)


def make_qualifiers(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Qualifiers:
    """Normalize qualifiers: sorted by name; a name given twice (with different
    values) or an empty name is a ``ValueError``."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    seen: dict[str, str] = {}
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(f"a qualifier is a name and a value (strings), not {name!r}={value!r}")
        if not name:
            raise ValueError("a qualifier needs a name")
        if seen.get(name, value) != value:
            raise ValueError(f"qualifier {name!r} is given twice with different values")
        seen[name] = value
    return tuple(sorted(seen.items()))


def parse_qualifier(text: str) -> tuple[str, str]:
    """A ``NAME=VALUE`` qualifier as given on a command line."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"a qualifier is NAME=VALUE, not {text!r}")
    return name, value


def check_uri(uri: str) -> str:
    """*uri*, refused (``ValueError``) if empty or holding a NUL or newline."""
    if not isinstance(uri, str) or not uri:
        raise ValueError("a reference needs a name (a URI or any non-empty string)")
    if "\0" in uri or "\n" in uri:
        raise ValueError(f"reference name {uri!r} holds a NUL or newline")
    return uri


@dataclass(frozen=True)
class Ref:
    """A reference from *uri* (with *qualifiers*) to *digest*, a blob or a tree.

    :param references_blobs: other blobs the asset needs (e.g. an artifact's
        proto blob names its logs); they must stay present while it does.
    :param references_directories: other trees it needs, whole.
    :param recorded_at: when the content was pushed or fetched (what
        ``oldest_content_accepted`` compares with).
    :param expire_at: when the reference stops being valid, or None for never.
    """

    uri: str
    kind: Kind
    digest: Digest
    qualifiers: Qualifiers = ()
    references_blobs: tuple[Digest, ...] = ()
    references_directories: tuple[Digest, ...] = ()
    recorded_at: datetime.datetime = field(default_factory=utc_now)
    expire_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        check_uri(self.uri)
        if self.kind not in KINDS:
            raise ValueError(f"a reference names a blob or a directory, not {self.kind!r}")
        if make_qualifiers(self.qualifiers) != self.qualifiers:
            raise ValueError("Ref.qualifiers must be normalized: use casvfs.refs.make_qualifiers()")
        for moment in (self.recorded_at, self.expire_at):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("reference times must be timezone-aware (UTC)")

    @property
    def content(self) -> tuple[list[Digest], list[Digest]]:
        """``(blobs, trees)`` this reference keeps alive: its own digest (a tree's
        root counts as a tree) and its reference lists."""
        blobs = [self.digest] if self.kind == "blob" else []
        trees = [self.digest] if self.kind == "directory" else []
        return blobs + list(self.references_blobs), trees + list(self.references_directories)

    def expired(self, now: datetime.datetime | None = None) -> bool:
        """Whether *expire_at* has passed (at *now*, default the current time)."""
        return self.expire_at is not None and self.expire_at <= (now or utc_now())

    def matches(self, asked: Qualifiers, match: Match = "subset") -> bool:
        """Whether a request with the qualifiers *asked* finds this reference."""
        if match == "exact":
            return asked == self.qualifiers
        mine = dict(self.qualifiers)
        return all(mine.get(name) == value for name, value in asked)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``casvfs ref ls --json`` prints)."""
        return {
            "uri": self.uri,
            "kind": self.kind,
            "digest": str(self.digest),
            "qualifiers": dict(self.qualifiers),
            "references_blobs": [str(d) for d in self.references_blobs],
            "references_directories": [str(d) for d in self.references_directories],
            "recorded_at": self.recorded_at.isoformat(),
            "expire_at": self.expire_at.isoformat() if self.expire_at is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ref:
        """The reference :meth:`to_json` made; malformed input is a ``ValueError``."""
        try:
            expire = data["expire_at"]
            return cls(
                uri=data["uri"],
                kind=data["kind"],
                digest=Digest.parse(data["digest"]),
                qualifiers=make_qualifiers(data["qualifiers"]),
                references_blobs=tuple(Digest.parse(d) for d in data["references_blobs"]),
                references_directories=tuple(Digest.parse(d) for d in data["references_directories"]),
                recorded_at=datetime.datetime.fromisoformat(data["recorded_at"]),
                expire_at=datetime.datetime.fromisoformat(expire) if expire is not None else None,
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a reference record: {error}") from None


def dumps(refs: Iterable[Ref]) -> bytes:
    """References as one canonical JSON document (how the ActionCache keeps them)."""
    return json.dumps([ref.to_json() for ref in refs], sort_keys=True, separators=(",", ":")).encode()


def loads(data: bytes) -> list[Ref]:
    """The references :func:`dumps` wrote; malformed input is a ``ValueError``."""
    try:
        items = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a reference list: {error}") from None
    if not isinstance(items, list):
        raise ValueError("not a reference list")
    return [Ref.from_json(item) for item in items]


def newest_match(
    refs: Iterable[Ref],
    asked: Qualifiers,
    *,
    match: Match = "subset",
    kind: Kind | None = None,
    oldest: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
) -> Ref | None:
    """The newest of *refs* of *kind* that *asked* matches, not expired at *now* and
    recorded no earlier than *oldest*; None if there is none."""
    now = now or utc_now()
    found = [
        ref
        for ref in refs
        if (kind is None or ref.kind == kind)
        and ref.matches(asked, match)
        and not ref.expired(now)
        and (oldest is None or ref.recorded_at >= oldest)
    ]
    return max(found, key=lambda ref: ref.recorded_at, default=None)


def parse_duration(text: str) -> datetime.timedelta:
    """A duration as ``30s``, ``15m``, ``12h``, ``7d`` or ``2w`` (a bare number is
    seconds); ``ValueError`` otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"a duration is a number with s, m, h, d or w, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"a duration must be positive, not {text!r}")
    return datetime.timedelta(seconds=value * units[unit])
