"""The whole-list checks of ``validate_directory`` accept exactly the messages the
entry-by-entry walk accepts, and report the same error for the rest."""

from __future__ import annotations

import random

import pytest

from casvfs import Digest, StoreError
from casvfs.digest import digest_bytes
from casvfs.errors import DigestError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.store.validation import _explain, _looks_valid, validate_directory

HASH = digest_bytes(b"x").hash

# What a hostile message may hold in each field; the first of each is valid.
NAMES = ["a", "b", "c", "", ".", "..", "a/b", "a\0", "é", "a\n", "b"]
HASHES = [HASH, HASH.upper(), HASH[:63], HASH + "0", HASH + "\n", "", "g" * 64, HASH[:-1] + "\n"]
SIZES = [1, 0, -1, 2**40]
TARGETS = [
    "t",
    "",
    "a\0b",
    "x" * 4095,
    "x" * 4096,
    "é" * 2047 + "x",
    "é" * 2048,
    "😀" * 1023 + "xxx",
    "😀" * 1024,
]
MODES = [None, 0o644, 0o7777, 0o10644, 1 << 20]


def _random_message(rng: random.Random) -> pb.Directory:
    """A Directory message that is valid about half the time."""
    bad = rng.random() < 0.5

    def pick(values: list[object]) -> object:
        return rng.choice(values) if bad and rng.random() < 0.15 else values[0]

    message = pb.Directory()
    used: list[str] = []

    def name() -> str:
        if bad and rng.random() < 0.1:
            return str(rng.choice(NAMES))
        fresh = f"n{len(used):03d}{rng.choice(['', 'x', 'é'])}"
        used.append(fresh)
        return fresh

    def mode(properties: pb.NodeProperties) -> None:
        value = pick(MODES)
        if value is not None:
            properties.unix_mode.value = int(str(value))

    for kind in ("files", "directories", "symlinks"):
        names = sorted(name() for _ in range(rng.randrange(4)))
        if bad and rng.random() < 0.1:
            rng.shuffle(names)
        for entry in names:
            if kind == "symlinks":
                link = message.symlinks.add(name=entry, target=str(pick(TARGETS)))
                mode(link.node_properties)
                continue
            digest = pb.Digest(hash=str(pick(HASHES)), size_bytes=int(str(pick(SIZES))))
            if kind == "files":
                file = message.files.add(name=entry, digest=digest)
                mode(file.node_properties)
            else:
                message.directories.add(name=entry, digest=digest)
    mode(message.node_properties)
    return message


def _error(check: object, message: pb.Directory) -> str | None:
    try:
        check(message, None)  # type: ignore[operator]
    except StoreError as error:
        assert error.reason == "invalid-directory"
        return str(error)
    return None


def test_quick_checks_agree_with_the_entry_walk_on_random_messages() -> None:
    rng = random.Random(20261203)
    valid = invalid = 0
    for _ in range(4000):
        message = _random_message(rng)
        expected = _error(_explain, message)
        assert _looks_valid(message) is (expected is None), message
        assert _error(validate_directory, message) == expected
        valid += expected is None
        invalid += expected is not None
    # Both sides are exercised, not just one.
    assert valid > 1000 and invalid > 1000


@pytest.mark.parametrize("hash_", [HASH + "\n", HASH.upper(), HASH[:63]])
def test_a_digest_is_exactly_64_lowercase_hex(hash_: str) -> None:
    with pytest.raises(DigestError, match="SHA-256"):
        Digest(hash_, 1)
    message = pb.Directory()
    message.files.add(name="f", digest=pb.Digest(hash=hash_, size_bytes=1))
    with pytest.raises(StoreError, match="entry 'f'"):
        validate_directory(message)
