"""The catalogue's photo files, stored by content: `<root>/<sha[:2]>/<sha>`.

Every enrolled photo's original bytes are kept under the sha256 of those bytes (the
`images.sha256` column), so a photo is stored once however often it is enrolled, and a
file's name says what it must contain. JPEG thumbnails are made on demand and cached
under `<root>/thumbnails/<size>/<sha>.jpg`.

Durability: every file is written to a temporary file in its final folder, fsynced,
renamed over its final name and the folder fsynced, so a file that exists is complete
and survives a crash. A crash can leave temporary files or a file whose database row
never committed; `sweep` removes both.

Several processes may share a data folder (`whaleid serve` and the CLI), so the order of
file and row writes is guarded by an advisory lock (`flock` on `<root>/.lock`): a writer
holds it shared from `put` until its row commits (`adding`), and whoever removes files
holds it exclusively (`removing`) and checks the database inside it. A sweep therefore
never removes the file of a row that is about to commit.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from embeddings.images import thumbnail_jpeg
from indexer.store import InvalidInput

__all__ = ["PHOTOS_DIR", "THUMBNAIL_SIZES", "PhotoFiles"]

PHOTOS_DIR = "photos"
"""The photo store's folder inside a data folder."""

THUMBNAIL_SIZES = range(16, 1025)
"""Accepted thumbnail sizes (long side, pixels)."""

_THUMBNAILS = "thumbnails"
_LOCK = ".lock"
_TMP_SUFFIX = ".tmp"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
# Thumbnails are for people looking at a catalogue, not for measuring.
_THUMBNAIL_MAX_PIXELS = 200_000_000


class PhotoFiles:
    """The original bytes of every enrolled photo, stored by their sha256.

    Args:
        root: the store's folder (`<data_dir>/photos`); created on the first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ originals

    def path(self, sha256: str) -> Path:
        """Where the photo with this sha256 is (or would be) stored.

        Raises:
            InvalidInput: not 64 lowercase hex characters (never a path outside the store).
        """
        _check_sha(sha256)
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        """Whether the photo's file is stored."""
        return self.path(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        """The stored photo's bytes.

        Raises:
            FileNotFoundError: the photo has no stored file.
        """
        return self.path(sha256).read_bytes()

    def put(self, content: bytes) -> str:
        """Store a photo's bytes durably (fsynced) and return their sha256.

        Idempotent: a photo already stored with the same size is left as it is. Call it
        inside `adding()` when a database row for the photo is about to be committed.

        Raises:
            InvalidInput: `content` is empty.
        """
        if not content:
            raise InvalidInput("content: a photo file cannot be empty")
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.path(sha256)
        try:
            if path.stat().st_size == len(content):
                return sha256
        except FileNotFoundError:
            pass
        _write_atomically(path, content)
        return sha256

    def delete(self, sha256: str) -> bool:
        """Remove a photo's file and its thumbnails; call it inside `removing()`, after
        checking that no database row names the photo.

        Returns:
            True if the original was stored.
        """
        path = self.path(sha256)
        existed = path.exists()
        path.unlink(missing_ok=True)
        for folder in self._thumbnail_folders():
            (folder / f"{sha256}.jpg").unlink(missing_ok=True)
        if existed:
            _fsync_dir(path.parent)
        return existed

    def shas(self) -> Iterator[str]:
        """The sha256 of every stored original, in no particular order."""
        for shard in self._shards():
            for entry in shard.iterdir():
                if _SHA256.fullmatch(entry.name) and entry.name.startswith(shard.name):
                    yield entry.name

    def sweep(self, keep: Iterable[str]) -> int:
        """Remove every stored file whose sha256 is not in `keep` (originals and
        thumbnails without a database row) and every leftover temporary file.

        Call it inside `removing()`, with `keep` read inside it: the sha256 of every
        database row. Files of other names are left alone.

        Returns:
            How many files were removed.
        """
        keep = set(keep)
        removed = 0
        folders = [*self._shards(), *self._thumbnail_folders()]
        for folder in folders:
            changed = False
            for entry in folder.iterdir():
                name = entry.name
                thumbnail = folder.parent.name == _THUMBNAILS and name.endswith(".jpg")
                sha = name.removesuffix(".jpg") if thumbnail else name
                orphan = _SHA256.fullmatch(sha) is not None and sha not in keep
                if (orphan or name.endswith(_TMP_SUFFIX)) and entry.is_file():
                    entry.unlink(missing_ok=True)
                    removed += 1
                    changed = True
            if changed:
                _fsync_dir(folder)
        return removed

    # ------------------------------------------------------------------ thumbnails

    def thumbnail(self, sha256: str, size: int) -> bytes:
        """A JPEG of the stored photo, EXIF orientation applied, long side `size` (a
        smaller photo is not enlarged); made once and cached.

        Raises:
            InvalidInput: `size` outside `THUMBNAIL_SIZES`.
            FileNotFoundError: the photo has no stored file.
            ImageError: the stored file cannot be decoded.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size not in THUMBNAIL_SIZES:
            raise InvalidInput(
                f"size: expected a whole number of pixels from {THUMBNAIL_SIZES.start}"
                f" to {THUMBNAIL_SIZES.stop - 1}, got {size!r}"
            )
        cached = self._thumbnail_path(sha256, size)
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            pass
        content = thumbnail_jpeg(self.read(sha256), size, max_pixels=_THUMBNAIL_MAX_PIXELS)
        # Shared lock: a concurrent delete of the photo either ran before (the original
        # is gone, nothing is cached) or waits until the thumbnail is written (and removes
        # it with the original).
        with self.adding():
            if self.has(sha256):
                _write_atomically(cached, content)
        return content

    # ------------------------------------------------------------------ locking

    @contextmanager
    def adding(self) -> Iterator[None]:
        """Hold the store's lock shared: from `put` until the photo's row commits."""
        with self._locked(fcntl.LOCK_SH):
            yield

    @contextmanager
    def removing(self) -> Iterator[None]:
        """Hold the store's lock exclusively: no file is being added meanwhile, so a
        sha256 that has no database row now will not get one before the lock is freed."""
        with self._locked(fcntl.LOCK_EX):
            yield

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        # A new open file for each hold: flock locks belong to the open file, so two
        # threads sharing one descriptor would not exclude each other.
        fd = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the lock

    # ------------------------------------------------------------------ plumbing

    def _thumbnail_path(self, sha256: str, size: int) -> Path:
        _check_sha(sha256)
        return self.root / _THUMBNAILS / str(size) / f"{sha256}.jpg"

    def _shards(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if _SHARD.fullmatch(p.name) and p.is_dir()]

    def _thumbnail_folders(self) -> list[Path]:
        folder = self.root / _THUMBNAILS
        if not folder.is_dir():
            return []
        return [p for p in folder.iterdir() if p.name.isdigit() and p.is_dir()]


def _check_sha(sha256: object) -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidInput(f"sha256: expected 64 lowercase hex characters, got {sha256!r}")


def _write_atomically(path: Path, content: bytes) -> None:
    """Write `content` to `path` so that a crash leaves either no file or all of it."""
    folder = path.parent
    created = not folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if created:
        # The new folder's own entry must be durable too, or the file could vanish with it.
        _fsync_dir(folder.parent)
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
