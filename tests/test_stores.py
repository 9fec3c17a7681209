"""StoreSpec: the library's way to open the store the command opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from casvfs import LocalStore, StoreError
from casvfs.remote import LayeredStore
from casvfs.stores import StoreSpec, default_store_dir


def test_default_store_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CASVFS_STORE", str(tmp_path / "env-store"))
    assert default_store_dir() == str(tmp_path / "env-store")
    assert StoreSpec().path == str(tmp_path / "env-store")
    monkeypatch.delenv("CASVFS_STORE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert StoreSpec().path == str(tmp_path / "cache" / "casvfs")


def test_a_spec_travels_to_another_process_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    spec = StoreSpec("store", remotes=("http://127.0.0.1:1",), instance_name="ci", config="user.yaml")
    assert spec.path == str(tmp_path / "store") and spec.config == str(tmp_path / "user.yaml")
    monkeypatch.chdir("/")
    assert StoreSpec.from_json(spec.to_json()) == spec


def test_open_gives_the_local_store_or_the_layered_one(tmp_path: Path) -> None:
    local = StoreSpec(str(tmp_path / "s"))
    assert isinstance(local.open(), LocalStore) and not local.has_remotes
    with pytest.raises(StoreError) as info:
        local.open_remote()
    assert info.value.reason == "no-remote"
    remote = StoreSpec(str(tmp_path / "s"), remotes=("http://127.0.0.1:1",))
    layered = remote.open()
    assert isinstance(layered, LayeredStore)
    assert [client.url for client in layered.remotes] == ["http://127.0.0.1:1"]
    layered.close()
