"""Content from its origin: downloads checked against ``checksum.sri``, archives
and git commits as trees. What ``casvfs serve`` fetches on a miss and what
``casvfs source fetch`` falls back to."""

from casvfs.origin.fetch import QUALIFIERS, download, fetch_from_origin, fetch_git, is_git
from casvfs.origin.sri import Integrity

__all__ = ["QUALIFIERS", "Integrity", "download", "fetch_from_origin", "fetch_git", "is_git"]
