"""Safe reading of a ZIP upload held in memory, for batch identification.

The archive is read from bytes and nothing is ever written to the file system: entry
names are reported for display and never used as paths, so names such as
"../../etc/passwd" are harmless. Every entry is decompressed through a hard cap and a
compression-ratio guard, never trusting the sizes its headers declare, so a zip bomb
costs at most the configured number of bytes.

Whole-archive refusals (not a zip, too many files, too many bytes) raise `ArchiveError`;
a refused file inside a usable archive is an `ArchiveEntry` with a reason, so the other
files are still identified.
"""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec

__all__ = [
    "ArchiveEntries",
    "ArchiveEntry",
    "ArchiveError",
    "ArchiveErrorReason",
    "ArchiveLimits",
    "EntryReason",
    "read_archive",
]

ArchiveErrorReason = Literal["not_a_zip", "too_many_entries", "too_large"]
EntryReason = Literal[
    "too_large", "nested_archive", "encrypted", "corrupted_image", "unsupported_format"
]

_CHUNK = 64 * 1024
_FLAG_ENCRYPTED = 0x1
# What the zipfile module and its decompressors raise on damaged input: bad CRC or
# headers (BadZipFile), truncated streams (EOFError), broken deflate/lzma/bzip2 data
# (zlib.error, LZMAError, OSError), undecodable names (UnicodeDecodeError, a ValueError)
# and short extra fields (struct.error).
_DAMAGED: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    ValueError,
    struct.error,
)
# Archive formats refused inside the archive: opening them would multiply the limits.
# (offset, magic, format name); tar's "ustar" sits after the 257-byte name block.
_ARCHIVE_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"BZh", "bzip2"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (257, b"ustar", "tar"),
)
# Files that macOS adds to the archives it makes; they are not photos of anything.
_MACOS_DIR = "__MACOSX"
_APPLEDOUBLE_PREFIX = "._"
_MACOS_FILES = frozenset({".DS_Store"})


class ArchiveLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How much one archive may cost to read.

    Attributes:
        max_entries: most files in the archive (directories and macOS metadata do not
            count).
        max_total_bytes: most uncompressed bytes, over all files: checked against the
            declared sizes before reading, then against the bytes actually read.
        max_entry_bytes: most uncompressed bytes of one file.
        max_ratio: most uncompressed bytes per compressed byte of one file (zip-bomb
            guard; photos barely compress, so e.g. 200 refuses only crafted data).
    """

    max_entries: Annotated[int, msgspec.Meta(ge=1)]
    max_total_bytes: Annotated[int, msgspec.Meta(ge=1)]
    max_entry_bytes: Annotated[int, msgspec.Meta(ge=1)]
    max_ratio: Annotated[float, msgspec.Meta(gt=0)]


class ArchiveError(Exception):
    """The whole archive is refused, with a machine-readable reason and a human message."""

    def __init__(self, reason: ArchiveErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason: ArchiveErrorReason = reason
        self.message = message


class ArchiveEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One file of the archive, usable or refused.

    Attributes:
        name: the entry's base name ("/" and "\\" both separate folders), for display.
        path: the full entry name as stored in the archive, for display only.
        content: the uncompressed bytes; None when refused.
        reason: None when `content` is usable; otherwise why it was refused:
            "too_large" (size or compression ratio above the limits), "nested_archive",
            "encrypted", "corrupted_image" (bad CRC, truncated or undecodable data) or
            "unsupported_format" (a compression method this reader does not know).
        detail: a human explanation of `reason`; None when usable.
    """

    name: str
    path: str
    content: bytes | None
    reason: EntryReason | None = None
    detail: str | None = None


class ArchiveEntries(Iterator[ArchiveEntry]):
    """The files of an archive, decompressed one at a time as they are iterated; `len()`
    is how many there are (known from the central directory, before any is read)."""

    def __init__(
        self, archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], limits: ArchiveLimits
    ) -> None:
        self._count = len(files)
        self._entries = _entries(archive, files, limits)

    def __len__(self) -> int:
        return self._count

    def __next__(self) -> ArchiveEntry:
        return next(self._entries)


def read_archive(data: bytes, limits: ArchiveLimits) -> ArchiveEntries:
    """Read the files of a ZIP archive, one at a time, in archive order.

    The central directory is checked at once (this call raises for a broken archive,
    too many files or too many declared bytes); the files are then decompressed one by
    one as the iterator is consumed, so only one file's bytes are held at a time.
    Directories, `__MACOSX/` entries, AppleDouble `._*` files and `.DS_Store` are skipped.

    Args:
        data: the whole archive.
        limits: the bounds on entries and bytes.

    Returns:
        An iterator of `ArchiveEntry`, one per file, that knows how many there are.

    Raises:
        ArchiveError: "not_a_zip" (unreadable central directory), "too_many_entries",
            or "too_large" (declared sizes above `max_total_bytes`). While iterating,
            "too_large" again if the bytes actually read exceed `max_total_bytes`; the
            entries already yielded stay valid.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    # NotImplementedError: a "version needed to extract" above what zipfile knows.
    except (*_DAMAGED, NotImplementedError) as exc:
        raise ArchiveError("not_a_zip", f"not a readable ZIP archive: {exc}") from exc
    files = [info for info in archive.infolist() if not _skipped(info.filename)]
    if len(files) > limits.max_entries:
        raise ArchiveError(
            "too_many_entries",
            f"{len(files)} files in the archive, above the limit of {limits.max_entries}",
        )
    # Files declared too large on their own are refused unread, so only the others
    # count towards what reading may cost.
    declared = sum(info.file_size for info in files if info.file_size <= limits.max_entry_bytes)
    if declared > limits.max_total_bytes:
        raise ArchiveError(
            "too_large",
            f"{declared} bytes uncompressed declared, above the limit of {limits.max_total_bytes}",
        )
    return ArchiveEntries(archive, files, limits)


def _entries(
    archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], limits: ArchiveLimits
) -> Iterator[ArchiveEntry]:
    total = 0
    with archive:
        for info in files:
            entry, read = _read_entry(archive, info, limits, limits.max_total_bytes - total)
            total += read
            yield entry


def _read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits, budget: int
) -> tuple[ArchiveEntry, int]:
    """Decompress one file through the caps.

    Args:
        archive: the open archive.
        info: the file's central-directory record.
        limits: the bounds.
        budget: bytes still allowed over the whole archive.

    Returns:
        (the entry, how many uncompressed bytes were read for it).

    Raises:
        ArchiveError: "too_large" when this file takes the archive over `budget`.
    """
    path = info.filename
    name = path.replace("\\", "/").rsplit("/", 1)[-1]

    def refused(reason: EntryReason, detail: str) -> ArchiveEntry:
        return ArchiveEntry(name=name, path=path, content=None, reason=reason, detail=detail)

    if info.flag_bits & _FLAG_ENCRYPTED:
        return refused("encrypted", "the file is encrypted"), 0
    if info.file_size > limits.max_entry_bytes:
        return refused(
            "too_large",
            f"{info.file_size} bytes uncompressed declared, above the limit of"
            f" {limits.max_entry_bytes}",
        ), 0
    # The declared sizes are not trusted: the cap is on bytes actually decompressed.
    ratio_cap = limits.max_ratio * max(info.compress_size, 1)
    chunks: list[bytes] = []
    read = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(min(_CHUNK, limits.max_entry_bytes + 1 - read)):
                read += len(chunk)
                if read > budget:
                    raise ArchiveError(
                        "too_large",
                        f"more than {limits.max_total_bytes} bytes uncompressed in the archive",
                    )
                if not chunks and (kind := _archive_kind(chunk)) is not None:
                    return refused("nested_archive", f"a {kind} archive inside the archive"), read
                chunks.append(chunk)
                if read > limits.max_entry_bytes:
                    return refused(
                        "too_large",
                        f"more than {limits.max_entry_bytes} bytes uncompressed",
                    ), read
                if read > ratio_cap:
                    return refused(
                        "too_large",
                        f"compression ratio above {limits.max_ratio:g}"
                        f" ({info.compress_size} bytes compressed)",
                    ), read
    except NotImplementedError as exc:
        return refused("unsupported_format", str(exc)), read
    except _DAMAGED as exc:
        return refused(
            "corrupted_image", f"damaged archive data: {str(exc) or type(exc).__name__}"
        ), read
    return ArchiveEntry(name=name, path=path, content=b"".join(chunks)), read


def _skipped(path: str) -> bool:
    """Whether an entry is a directory or macOS metadata rather than a file to read."""
    parts = path.replace("\\", "/").split("/")
    base = parts[-1]
    return (
        base == ""
        or parts[0] == _MACOS_DIR
        or base.startswith(_APPLEDOUBLE_PREFIX)
        or base in _MACOS_FILES
    )


def _archive_kind(head: bytes) -> str | None:
    """The archive format whose magic number `head` starts with, or None."""
    for offset, magic, kind in _ARCHIVE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None
