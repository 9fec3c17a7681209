"""Seeded random trees (files, executables, empty dirs, symlinks relative, absolute,
dangling and escaping): both implementations must agree on everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from casvfs import CasDirectory, LocalStore, OsDirectory
from tests.outcomes import outcome
from tests.trees import build_host, host_snapshot, random_spec, snapshot

SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_import_list_export_round_trip(tmp_path: Path, seed: int) -> None:
    host = build_host(str(tmp_path / "host"), random_spec(seed))
    cas = CasDirectory(LocalStore(str(tmp_path / "store")))
    cas.import_files(host)
    assert snapshot(OsDirectory(host)) == snapshot(cas)
    for link in (False, True):
        out = tmp_path / f"export-{link}"
        cas.export_files(str(out), can_link=link)
        assert host_snapshot(str(out)) == host_snapshot(host)
        again = CasDirectory(cas.store)
        again.import_files(str(out))
        assert again.get_digest() == cas.get_digest()


@pytest.mark.parametrize("seed", SEEDS)
def test_merges_agree(tmp_path: Path, seed: int) -> None:
    base = build_host(str(tmp_path / "base"), random_spec(seed))
    overlay = build_host(str(tmp_path / "overlay"), random_spec(seed + 1000))
    store = LocalStore(str(tmp_path / "store"))

    def cas_of(path: str) -> CasDirectory:
        tree = CasDirectory(store)
        tree.import_files(path)
        return tree

    host_dest = tmp_path / "host-dest"
    shutil.copytree(base, host_dest, symlinks=True)
    on_host = OsDirectory(str(host_dest))
    host_result = outcome(lambda: on_host.import_files(overlay))
    cas_cas, cas_host = cas_of(base), cas_of(base)
    assert outcome(lambda: cas_cas.import_files(cas_of(overlay))) == host_result
    assert outcome(lambda: cas_host.import_files(overlay)) == host_result
    assert snapshot(cas_cas) == snapshot(on_host) == snapshot(cas_host)
    # a CAS->CAS import equals the host-path import of the exported overlay
    exported_overlay = tmp_path / "exported-overlay"
    cas_of(overlay).export_files(str(exported_overlay))
    via_export = cas_of(base)
    assert outcome(lambda: via_export.import_files(str(exported_overlay))) == host_result
    assert via_export.get_digest() == cas_cas.get_digest()
    # and exporting the merged CAS tree writes what the host merge wrote
    merged_out = tmp_path / "merged-out"
    cas_cas.export_files(str(merged_out))
    assert host_snapshot(str(merged_out)) == host_snapshot(str(host_dest))
