"""Fixed timestamps shared by every layer."""

from __future__ import annotations

import calendar
import datetime

from google.protobuf.timestamp_pb2 import Timestamp

ARBITRARY_TIMESTAMP = calendar.timegm((2011, 11, 11, 11, 11, 11))
"""BuildStream's ``BST_ARBITRARY_TIMESTAMP``: the mtime of any node that records none,
and of every object file in a :class:`~casvfs.LocalStore` (so hard links to them
carry it)."""


def recorded_mtime_ns(mtime_ns: int) -> int:
    """An mtime as a tree records it: truncated to microseconds, as buildbox-casd
    records it, so digests captured by either agree."""
    return mtime_ns - mtime_ns % 1000


def to_timestamp(moment: datetime.datetime) -> Timestamp:
    """A protobuf ``Timestamp`` of an aware datetime (Remote Asset's expiries)."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime.datetime:
    """The aware (UTC) datetime of a protobuf ``Timestamp``."""
    return stamp.ToDatetime(tzinfo=datetime.UTC)
