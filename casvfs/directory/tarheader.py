"""Tar member headers for :meth:`Directory.export_to_tar`, built in one step.

``tarfile`` builds a header field by field through its general pax/GNU machinery,
17 us a member here (measured: ``addfile`` is 24 us, the whole of ``tar c`` about
20 us a file on the Linux sources). The members an export writes are simple:
owner 0:0, no user or group names, an integer mtime. For those whose name and
link target are short ASCII (no pax record needed), :class:`TarMember` packs the
POSIX header itself, byte for byte what ``tarfile`` writes for the same member;
everything else goes through ``tarfile``. Should this Python's ``tarfile`` write
a different header for a sample member, the shortcut turns itself off.
"""

from __future__ import annotations

import struct
import tarfile
from typing import Literal

_FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_EMPTY_DEVICE = b"\0" * 8
_OWNER = b"0000000\0"
_CHECKSUM_AT = 148


def _header(name: bytes, mode: int, size: int, mtime: int, kind: bytes, linkname: bytes) -> bytes:
    header = _FIELDS.pack(
        name,
        b"%07o\0" % mode,
        _OWNER,
        _OWNER,
        b"%011o\0" % size,
        b"%011o\0" % mtime,
        b" " * 8,  # the checksum counts its own field as spaces
        kind,
        linkname,
        tarfile.POSIX_MAGIC,
        b"",
        b"",
        _EMPTY_DEVICE,
        _EMPTY_DEVICE,
        b"",
    )
    checksum = b"%06o\0" % sum(header)
    return header[:_CHECKSUM_AT] + checksum + header[_CHECKSUM_AT + 7 :]


class TarMember(tarfile.TarInfo):
    """A :class:`tarfile.TarInfo` whose header, for a simple member of a USTAR or
    pax archive, is packed in one step (see the module's text)."""

    def tobuf(
        self,
        format: Literal[0, 1, 2] | None = tarfile.PAX_FORMAT,
        encoding: str | None = tarfile.ENCODING,
        errors: str = "surrogateescape",
    ) -> bytes:
        """The member's header blocks, as :meth:`tarfile.TarInfo.tobuf` makes them."""
        if _FAST and format in (tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
            fast = self._simple_header()
            if fast is not None:
                return fast
        return super().tobuf(format, encoding, errors)

    def _simple_header(self) -> bytes | None:
        name = self.name
        if self.type == tarfile.DIRTYPE and not name.endswith("/"):
            name += "/"
        mtime = self.mtime
        if (
            self.uid
            or self.gid
            or self.uname
            or self.gname
            or self.pax_headers
            or type(mtime) is not int
            or not 0 <= mtime < 8**11
            or not 0 <= self.size < 8**11
            or self.type not in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE)
            or len(name) > 100
            or len(self.linkname) > 100
            or not name.isascii()
            or not self.linkname.isascii()
        ):
            return None
        return _header(
            name.encode("ascii"),
            self.mode & 0o7777,
            self.size,
            mtime,
            self.type,
            self.linkname.encode("ascii"),
        )


def _agrees() -> bool:
    """Whether the packed header equals this Python's ``tarfile`` one for members
    of each kind the shortcut takes."""
    for kind, name, link in (
        (tarfile.REGTYPE, "a/b", ""),
        (tarfile.DIRTYPE, "d", ""),
        (tarfile.SYMTYPE, "l", "t"),
    ):
        members = (tarfile.TarInfo(name), TarMember(name))
        for member in members:
            member.type, member.linkname, member.size, member.mode = kind, link, 7, 0o755
            member.mtime, member.uname, member.gname = 1321009871, "", ""
        if members[1]._simple_header() != members[0].tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"):
            return False
    return True


_FAST = _agrees()
