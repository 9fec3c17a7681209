"""Run by the peers' Python (BuildStream 2.8.1's venv), never imported by casvfs:
time BuildStream's own Directory operations on a tree, with the buildbox-casd
BuildStream starts itself.

    python peer_buildstream.py WORKDIR TREE [OTHER_TREE]

Prints one JSON object: seconds per operation, and the root digests BuildStream
computed (so the caller can check they agree with casvfs).
"""

from __future__ import annotations

import json
import os
import sys
import time

from buildstream._cas.cascache import CASCache
from buildstream._cas.casdprocessmanager import CASDProcessManager
from buildstream._cas.casserver import LogLevel
from buildstream.storage._casbaseddirectory import CasBasedDirectory
from buildstream.storage._filebaseddirectory import FileBasedDirectory


def main() -> int:
    work, tree = sys.argv[1], sys.argv[2]
    other = sys.argv[3] if len(sys.argv) > 3 else None
    cache = os.path.join(work, "bst-cache")
    casd = CASDProcessManager(
        cache, os.path.join(cache, "logs"), LogLevel.Levels.WARNING, None, None, False, None
    )
    cas = CASCache(cache, casd=casd)
    result: dict[str, object] = {}
    try:
        started = time.perf_counter()
        imported = CasBasedDirectory(cas)
        imported.import_files(tree)
        result["import host -> CAS"] = time.perf_counter() - started
        result["digest"] = f"{imported._get_digest().hash}/{imported._get_digest().size_bytes}"

        started = time.perf_counter()
        whole = CasBasedDirectory(cas)
        whole.import_files(CasBasedDirectory(cas, digest=imported._get_digest()), collect_result=False)
        result["CAS -> CAS import (whole tree)"] = time.perf_counter() - started

        if other is not None:
            second = CasBasedDirectory(cas)
            second.import_files(other)
            started = time.perf_counter()
            merged = CasBasedDirectory(cas, digest=imported._get_digest())
            merged.import_files(CasBasedDirectory(cas, digest=second._get_digest()), collect_result=False)
            result["merge of two trees"] = time.perf_counter() - started
            result["merged digest"] = f"{merged._get_digest().hash}/{merged._get_digest().size_bytes}"

        target = os.path.join(work, "bst-filebased")
        os.makedirs(target)
        started = time.perf_counter()
        FileBasedDirectory(target).import_files(tree)
        result["FileBasedDirectory.import_files"] = time.perf_counter() - started
    finally:
        cas.release_resources()
        casd.release_resources()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
