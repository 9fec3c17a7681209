"""Garbage collection: what no live reference, mount or recent use reaches goes,
everything else stays (see :mod:`casvfs.gc.collect`)."""

from casvfs.gc.collect import (
    DEFAULT_GRACE,
    MIN_GRACE,
    GcReport,
    StoreStats,
    collect,
    disk_quota,
    store_stats,
)

__all__ = ["DEFAULT_GRACE", "MIN_GRACE", "GcReport", "StoreStats", "collect", "disk_quota", "store_stats"]
