"""By-reference import costs O(1): no walk, no load of the imported tree."""

from __future__ import annotations

from pathlib import Path

from casvfs import CasDirectory, Digest, MemoryStore
from casvfs.protos import remote_execution_pb2 as pb


class CountingStore(MemoryStore):
    """A MemoryStore counting Directory loads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def get_directory(self, digest: Digest) -> pb.Directory:
        self.loads += 1
        return super().get_directory(digest)


def _wide_tree(store: CountingStore, width: int, depth: int) -> CasDirectory:
    tree = CasDirectory(store)
    for index in range(width):
        sub = tree.open_directory("/".join(f"d{index}-{level}" for level in range(depth)), create=True)
        with sub.open_file("f", mode="wb") as stream:
            stream.write(str(index).encode())
    return tree


def test_import_into_a_free_name_loads_nothing(tmp_path: Path) -> None:
    store = CountingStore()
    big = _wide_tree(store, 200, 5)
    big_digest = big.get_digest()
    source = CasDirectory(store, big_digest)  # fresh: nothing loaded yet
    target = CasDirectory(store)
    store.loads = 0
    assert target.open_directory("usr/share", create=True).import_files(source, collect_result=False) is None
    # one load: the source's root level, to see its entries; none of the 1,000 below
    assert store.loads == 1
    assert target.open_directory("usr/share").get_digest() == big_digest
    # the result, when asked for, walks the source to list what it holds
    listed = CasDirectory(store).import_files(CasDirectory(store, big_digest))
    assert listed is not None and len(listed.files_written) == 200


def test_lazy_loading_only_touches_the_path(tmp_path: Path) -> None:
    store = CountingStore()
    digest = _wide_tree(store, 50, 4).get_digest()
    store.loads = 0
    tree = CasDirectory(store, digest)
    assert tree.isfile("d7-0/d7-1/d7-2/d7-3/f")
    assert store.loads == 5  # root and the four levels on the path
