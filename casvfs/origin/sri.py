"""Subresource Integrity (``checksum.sri``) values: ``ALG-BASE64`` hashes,
several separated by spaces, satisfied when at least one of them validates
(sha256, sha384, sha512; unknown algorithms are ignored, as browsers do)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

ALGORITHMS = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class Integrity:
    """The parsed hashes of one ``checksum.sri`` value: ``(algorithm, digest)``."""

    hashes: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> Integrity:
        """Parse an SRI value; ``ValueError`` if it names no supported hash or a
        supported one is malformed."""
        hashes = []
        for item in text.split():
            algorithm, sep, value = item.partition("-")
            if not sep or algorithm not in ALGORITHMS:
                continue
            try:
                raw = base64.b64decode(value.split("?")[0], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"checksum.sri: {item!r} is not valid base64") from None
            if len(raw) != hashlib.new(algorithm).digest_size:
                raise ValueError(f"checksum.sri: {item!r} has the wrong length for {algorithm}")
            hashes.append((algorithm, raw))
        if not hashes:
            raise ValueError(f"checksum.sri {text!r} names no sha256, sha384 or sha512 hash")
        return cls(tuple(hashes))

    @classmethod
    def sha256_hex(cls, hex_digest: str) -> Integrity:
        """The integrity of a SHA-256 given in hex (``--sha256``)."""
        try:
            raw = bytes.fromhex(hex_digest)
        except ValueError:
            raise ValueError(f"not a hex SHA-256: {hex_digest!r}") from None
        if len(raw) != 32:
            raise ValueError(f"not a hex SHA-256: {hex_digest!r}")
        return cls((("sha256", raw),))

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms to compute while the content streams by."""
        return tuple(dict.fromkeys(algorithm for algorithm, _ in self.hashes))

    def satisfied(self, digests: dict[str, bytes]) -> bool:
        """Whether one of the hashes matches the computed *digests* (by algorithm)."""
        return any(digests.get(algorithm) == value for algorithm, value in self.hashes)

    def __str__(self) -> str:
        return " ".join(f"{algorithm}-{base64.b64encode(value).decode()}" for algorithm, value in self.hashes)
