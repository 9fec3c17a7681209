"""Named references: a URI and qualifiers -> a blob or a tree, with the content it
keeps alive and an expiry. The local face of the Remote Asset API and the roots
of garbage collection.

``RefIndex.of_store(store)`` is the index the ``casvfs ref`` command uses.
"""

from casvfs.refs.content import missing_content, missing_in, missing_in_store
from casvfs.refs.index import INDEX_FILE, RefIndex
from casvfs.refs.ref import (
    KINDS,
    MATCHES,
    Kind,
    Match,
    Qualifiers,
    Ref,
    check_uri,
    dumps,
    loads,
    make_qualifiers,
    newest_match,
    parse_duration,
    parse_qualifier,
    utc_now,
)

__all__ = [
    "INDEX_FILE",
    "KINDS",
    "MATCHES",
    "Kind",
    "Match",
    "Qualifiers",
    "Ref",
    "RefIndex",
    "check_uri",
    "dumps",
    "loads",
    "make_qualifiers",
    "missing_content",
    "missing_in",
    "missing_in_store",
    "newest_match",
    "parse_duration",
    "parse_qualifier",
    "utc_now",
]
