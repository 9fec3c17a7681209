"""The refs index: matching, expiry, listing, removal, several processes at once,
and the completeness check made before a reference is recorded or handed out."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from casvfs import CasDirectory, LocalStore, StoreError, digest_bytes
from casvfs.errors import REASON_REF_NOT_FOUND, RefError
from casvfs.refs import (
    Ref,
    RefIndex,
    dumps,
    loads,
    make_qualifiers,
    missing_content,
    parse_duration,
    parse_qualifier,
    utc_now,
)
from peers.casd import REPO

DIGEST = digest_bytes(b"one")
OTHER = digest_bytes(b"two")


@pytest.fixture
def index(tmp_path: Path) -> RefIndex:
    return RefIndex.of_store(LocalStore(tmp_path / "store"))


def test_subset_matching_finds_what_exact_matching_does_not(index: RefIndex) -> None:
    index.set("urn:src", DIGEST, qualifiers={"vcs.commit": "abc", "bst.kind": "git"})
    assert index.get("urn:src", {"vcs.commit": "abc"}).digest == DIGEST
    assert index.get("urn:src").digest == DIGEST
    with pytest.raises(RefError) as caught:
        index.get("urn:src", {"vcs.commit": "abc"}, match="exact")
    assert caught.value.reason == REASON_REF_NOT_FOUND
    assert index.get("urn:src", {"bst.kind": "git", "vcs.commit": "abc"}, match="exact").digest == DIGEST
    assert index.lookup(["urn:src"], make_qualifiers({"vcs.commit": "def"})) is None
    assert index.lookup(["urn:nothing", "urn:src"], ()) is not None


def test_the_newest_match_wins_and_the_same_key_replaces(index: RefIndex) -> None:
    index.set("name", DIGEST, qualifiers={"a": "1"})
    index.set("name", OTHER, qualifiers={"a": "1", "b": "2"})
    assert index.get("name", {"a": "1"}).digest == OTHER
    index.set("name", DIGEST, qualifiers={"a": "1"})
    assert index.get("name", {"a": "1"}).digest == DIGEST
    assert len(index.entries(["name"])) == 2
    index.set("name", OTHER, qualifiers={"a": "1"})
    assert len(index.entries(["name"])) == 2
    assert index.get("name", {"a": "1"}, match="exact").digest == OTHER


def test_kinds_are_kept_apart(index: RefIndex) -> None:
    index.set("x", DIGEST, kind="blob")
    with pytest.raises(RefError):
        index.get("x", kind="directory")
    assert index.get("x", kind="blob").kind == "blob"


def test_expiry_and_oldest_content_accepted(index: RefIndex) -> None:
    now = utc_now()
    index.set("soon", DIGEST, expire_at=now + datetime.timedelta(hours=1))
    index.set("gone", DIGEST, expire_at=now - datetime.timedelta(seconds=1))
    assert index.lookup(["soon"]) is not None
    assert index.lookup(["soon"], now=now + datetime.timedelta(hours=2)) is None
    assert index.lookup(["gone"]) is None
    assert index.lookup(["soon"], oldest=now - datetime.timedelta(minutes=1)) is not None
    assert index.lookup(["soon"], oldest=now + datetime.timedelta(minutes=1)) is None
    assert [ref.uri for ref in index.prune()] == ["gone"]
    assert index.entries(["gone"]) == []
    assert index.entries(["soon"]) != []


def test_listing_by_prefix_and_removal(index: RefIndex) -> None:
    for name in ("release/1.0", "release/1.1", "releases", "other", "release/%_"):
        index.set(name, DIGEST)
    assert [ref.uri for ref in index.by_prefix("release/")] == ["release/%_", "release/1.0", "release/1.1"]
    assert len(index.by_prefix()) == 5
    index.set("other", OTHER, qualifiers={"q": "1"})
    assert index.remove("other", {"q": "1"}) == 1
    assert index.get("other").digest == DIGEST
    assert index.remove("other") == 1
    with pytest.raises(RefError) as caught:
        index.remove("other")
    assert caught.value.reason == REASON_REF_NOT_FOUND


def test_a_reference_survives_its_json_form() -> None:
    ref = Ref(
        "urn:x",
        "blob",
        DIGEST,
        make_qualifiers({"b": "2", "a": "1"}),
        references_blobs=(OTHER,),
        references_directories=(DIGEST,),
        expire_at=utc_now(),
    )
    assert loads(dumps([ref, ref])) == [ref, ref]
    with pytest.raises(ValueError):
        loads(b'[{"uri": "x"}]')
    with pytest.raises(ValueError):
        loads(b"\xff")


def test_bad_input_is_a_value_error(index: RefIndex) -> None:
    with pytest.raises(ValueError, match="twice"):
        make_qualifiers([("a", "1"), ("a", "2")])
    with pytest.raises(ValueError, match="name"):
        index.set("", DIGEST)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_qualifier("novalue")
    assert parse_qualifier("a=b=c") == ("a", "b=c")
    assert parse_duration("2h") == datetime.timedelta(hours=2)
    assert parse_duration("90") == datetime.timedelta(seconds=90)
    for text in ("", "0s", "-1d", "soon", "infd"):
        with pytest.raises(ValueError):
            parse_duration(text)


def test_a_broken_index_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "refs.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="refs index"):
        RefIndex(path).lookup(["x"])


WRITER = r"""
import sys
from casvfs import digest_bytes
from casvfs.refs import RefIndex
index = RefIndex(sys.argv[1])
for i in range(40):
    index.set(f"{sys.argv[2]}/{i}", digest_bytes(b"%d" % i), qualifiers={"w": sys.argv[2]})
"""


def test_several_processes_record_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "refs.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}"], env=env, stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for writer in writers:
        _out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    refs = RefIndex(path).by_prefix()
    assert len(refs) == 160
    assert {ref.uri for ref in refs} == {f"w{n}/{i}" for n in range(4) for i in range(40)}


def test_missing_content_names_what_a_tree_or_its_references_lack(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    tree = CasDirectory(store)
    with tree.open_directory("a/b", create=True).open_file("f", mode="wb") as stream:
        stream.write(b"leaf")
    root = tree.get_digest()
    extra = store.put_bytes(b"log")
    ref = Ref("t", "directory", root, references_blobs=(extra,))
    assert missing_content(store, ref) == []
    leaf = digest_bytes(b"leaf")
    os.unlink(store.object_path(leaf))
    os.unlink(store.object_path(extra))
    assert sorted(missing_content(store, ref)) == sorted([leaf, extra])
    inner = tree.open_directory("a").get_digest()
    os.unlink(store.object_path(inner))
    assert set(missing_content(store, ref)) == {inner, extra}
    os.unlink(store.object_path(root))
    assert set(missing_content(store, ref)) == {root, extra}
    assert missing_content(store, Ref("b", "blob", OTHER)) == [OTHER]


def test_the_ref_commands_and_ref_names_as_digest_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from casvfs.cli import main

    store = tmp_path / "store"
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "a" / "f").write_bytes(b"hello")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--store", str(store), *args])
        out, err = capsys.readouterr()
        return code, out.strip(), err.strip()

    _code, digest, _err = run("import", str(tmp_path / "tree"))
    assert run("ref", "set", "release/1.0", digest, "--qualifier", "os=linux", "--expire", "1d")[0] == 0
    assert run("ref", "set", "release/latest", "release/1.0")[0] == 0
    assert run("ref", "get", "release/1.0", "--qualifier", "os=linux") == (0, digest, "")
    code, _out, err = run("ref", "get", "release/1.0", "--qualifier", "os=mac")
    assert code == 1 and err == "casvfs: error: no reference 'release/1.0' with os=mac"
    assert run("cat", "release/latest", "a/f") == (0, "hello", "")
    code, out, _err = run("ref", "ls", "release/", "--json")
    listed = {item["uri"]: item for item in json.loads(out)}
    assert listed["release/1.0"]["qualifiers"] == {"os": "linux"} and listed["release/1.0"]["expire_at"]
    assert listed["release/latest"]["digest"] == digest
    absent = "00" * 32 + "/5"
    code, _out, err = run("ref", "set", "broken", absent)
    assert code == 1 and "lacks 1 blob(s)" in err and absent in err
    code, _out, err = run("ls", "no-such-name")
    assert code == 1 and "neither a digest" in err
    assert run("ref", "rm", "release/latest")[0] == 0
    assert run("ref", "rm", "release/latest")[0] == 1
    assert run("ref", "set", "x", digest, "--expire", "soon")[0] == 1
