"""Garbage collection of a local store.

Roots: every live reference (not expired) and all it references (trees walked
whole, ``references_*`` included), every tree a live mount shows or captured, and
every object used (written, found, read or deduplicated against) within the grace
period, so an import under way in another process is never cut, and every tree
imported within it (an import that trusted the stat cache used no object it can
see). Nothing a root reaches is ever removed. While it removes objects, imports
trust no presence the stat cache records (:meth:`StatCache.removing`).

Without a quota, every other object goes. With one (buildbox-casd's shape), only
when the store holds more than *quota_high* bytes, least recently used first,
until it holds at most *quota_low*.

Safe beside other processes importing, exporting and mounting on the same store:
an object is moved aside before it is removed and put back if it was used in
between (:meth:`LocalStore.remove_unused`).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from casvfs.digest import Digest, entry_digest
from casvfs.errors import REASON_BLOB_MISSING, StoreError
from casvfs.refs import Ref, RefIndex, utc_now
from casvfs.store.local import TOUCH_SECONDS, LocalStore
from casvfs.store.treesize import parse_size

DEFAULT_GRACE = 3600.0
"""An hour, like git's prune expiry."""
MIN_GRACE = 2 * TOUCH_SECONDS
"""A shorter grace could remove an object used since its last use was recorded."""


@dataclass
class GcReport:
    """What :func:`collect` found and did."""

    objects: int = 0
    """Objects in the store before."""
    stored_bytes: int = 0
    """Their size."""
    roots: int = 0
    """Live references and mounted trees."""
    reachable: int = 0
    """Objects the roots reach (all kept)."""
    removed: int = 0
    """Objects removed (with ``dry_run``: that would be)."""
    freed_bytes: int = 0
    kept_young: int = 0
    """Unreachable objects kept because they were used within the grace period."""
    missing: int = 0
    """Objects the roots name that the store does not hold (a partial store)."""
    listed: list[str] = field(default_factory=list)
    """With ``dry_run``: the hashes of the objects that would be removed."""
    tidied: list[str] = field(default_factory=list)
    """Stale temporary files, dead mounts' scratch and old twins removed."""
    seconds: float = 0.0
    dry_run: bool = False


def _roots(store: LocalStore, refs: Iterable[Ref]) -> tuple[list[Ref], list[Digest]]:
    """The live (unexpired) ones of *refs*, and the trees live mounts of *store* use."""
    now = utc_now()
    return [ref for ref in refs if not ref.expired(now)], store.live_roots().live()


def _reachable(store: LocalStore, refs: Iterable[Ref], mounted: Iterable[Digest]) -> tuple[set[str], int]:
    """The hashes of everything *refs* (their content) and the *mounted* trees
    reach, and how many of those the store lacks."""
    blobs: list[Digest] = []
    trees: list[Digest] = list(mounted)
    for ref in refs:
        ref_blobs, ref_trees = ref.content
        blobs += ref_blobs
        trees += ref_trees
    seen: set[str] = {digest.hash for digest in blobs}
    missing = 0
    for root in trees:
        if root.hash in seen:
            continue
        seen.add(root.hash)
        pending = [root]
        while pending:
            digest = pending.pop()
            try:
                message = store.get_directory(digest)
            except StoreError as error:
                if error.reason != REASON_BLOB_MISSING:
                    raise
                missing += 1
                continue
            for file in message.files:
                seen.add(file.digest.hash)
            for child in message.directories:
                if child.digest.hash not in seen:
                    seen.add(child.digest.hash)
                    pending.append(entry_digest(child.digest))
    return seen, missing


def collect(
    store: LocalStore,
    index: RefIndex | None = None,
    *,
    grace: float = DEFAULT_GRACE,
    quota_high: int | None = None,
    quota_low: int | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Remove the objects of *store* no root reaches (see the module's text);
    *index* defaults to the store's own refs index. ``ValueError`` for a grace
    under :data:`MIN_GRACE` or a low quota above the high one."""
    if grace < MIN_GRACE:
        raise ValueError(f"the grace period must be at least {MIN_GRACE:.0f} s")
    if quota_high is not None and quota_low is None:
        quota_low = quota_high
    if quota_low is not None and quota_high is not None and quota_low > quota_high:
        raise ValueError("the low quota must not be above the high one")
    if quota_low is not None and quota_high is None:
        raise ValueError("a low quota needs a high one")
    started = time.monotonic()
    # anything used after this moment is in use now
    used_since = time.time() - grace
    report = GcReport(dry_run=dry_run)
    live, mounted = _roots(store, (index or RefIndex.of_store(store)).by_prefix())
    report.roots = len(live) + len(mounted)
    reachable, report.missing = _reachable(store, live, mounted)
    # Trees imported within the grace period are in recent use: an import that
    # trusted the stat cache refreshed none of their objects' last use.
    recent, _missing = _reachable(store, (), store.stat_cache().imported_since(used_since, prune=not dry_run))
    candidates: list[tuple[float, str, int]] = []
    for name, size, used in store.object_uses():
        report.objects += 1
        report.stored_bytes += size
        if name in reachable:
            report.reachable += 1
        elif used >= used_since or name in recent:
            report.kept_young += 1
        else:
            candidates.append((used, name, size))
    candidates.sort()  # least recently used first
    held = report.stored_bytes
    removing = store.stat_cache().removing() if candidates and not dry_run else contextlib.nullcontext()
    with removing:  # imports meanwhile trust no recorded presence
        for _used, name, size in candidates:
            if (
                quota_high is not None
                and quota_low is not None
                and (report.stored_bytes <= quota_high or held <= quota_low)
            ):
                break
            freed = size if dry_run else store.remove_unused(name, used_since=used_since)
            if dry_run:
                report.listed.append(name)
            if freed or dry_run:
                report.removed += 1
                report.freed_bytes += freed
                held -= freed
    if not dry_run:
        report.tidied = store.tidy()
    report.seconds = time.monotonic() - started
    return report


def disk_quota(directory: str, text: str) -> int:
    """A quota given as bytes (``10G``, ``500M``, ``1024``) or as a percentage of
    the file system holding *directory* (a store's, ``80%``)."""
    text = text.strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1])
        except ValueError:
            raise ValueError(f"not a percentage: {text!r}") from None
        if not 0 < share <= 100:
            raise ValueError(f"a quota percentage is between 0 and 100, not {text!r}")
        return int(shutil.disk_usage(directory).total * share / 100)
    try:
        value = parse_size(text)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (bytes, K, M, G, T, or a percentage of the disk)") from None
    if value < 0:
        raise ValueError(f"a quota must not be negative: {text!r}")
    return value


@dataclass(frozen=True)
class StoreStats:
    """What a store holds (``casvfs stats``)."""

    objects: int
    stored_bytes: int
    refs: int
    live_refs: int
    trees: int
    """Distinct trees the live references name."""
    reachable_bytes: int
    reclaimable_bytes: int
    """What a gc with no quota and no grace period would free now."""


def store_stats(store: LocalStore, index: RefIndex | None = None) -> StoreStats:
    """Count *store*'s objects and references, and what they keep."""
    refs = (index or RefIndex.of_store(store)).by_prefix()
    live, mounted = _roots(store, refs)
    reachable, _missing = _reachable(store, live, mounted)
    objects = total = kept = 0
    for name, size, _used in store.object_uses():
        objects += 1
        total += size
        if name in reachable:
            kept += size
    return StoreStats(
        objects=objects,
        stored_bytes=total,
        refs=len(refs),
        live_refs=len(live),
        trees=len({digest for ref in live for digest in ref.content[1]}),
        reachable_bytes=kept,
        reclaimable_bytes=total - kept,
    )
