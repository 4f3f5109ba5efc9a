"""The SQLite embedding database: individuals, images and their features.

This is the source of truth. FAISS indexes are derived from it and can always be rebuilt
from it; the pair (`Store.epoch()`, `Store.max_feature_id()`) tells an index whether it
is stale (the epoch moved: rebuild) or only behind (newer feature ids: add them).

Durability: WAL journal with `synchronous=FULL`, so a write acknowledged by a returning
method is on disk before it returns and survives the process being killed.

Thread-safety: one connection, guarded by a lock; every write is one `BEGIN IMMEDIATE`
transaction, so a failure half-way leaves nothing written.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import msgspec
import numpy as np

from embeddings.protocol import GlobalEmbedding, LocalFeatures

__all__ = [
    "DATABASE_FILE",
    "SCHEMA_VERSION",
    "Conflict",
    "FeatureRow",
    "ImageRow",
    "Individual",
    "InvalidInput",
    "NewImage",
    "NotFound",
    "Store",
    "StoreError",
]

SCHEMA_VERSION = 3
DATABASE_FILE = "whaleid.sqlite3"
"""The database's file name inside a data folder."""
"""Stored in `PRAGMA user_version`; bump it with a migration when the schema changes."""

_EPOCH_KEY = "store.epoch"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_BUSY_TIMEOUT_MS = 10_000
# Little-endian on disk whatever the host, so a database file can be copied between
# machines.
_F32 = np.dtype("<f4")
_U8 = np.dtype("u1")

_SCHEMA = (
    """
    CREATE TABLE individuals (
        id TEXT PRIMARY KEY,
        species TEXT,
        name TEXT,
        created_at TEXT
    )
    """,
    # AUTOINCREMENT: ids are never reused after a delete, so an image id quoted in an old
    # answer, or a feature id remembered by an index, never points at a different row.
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sha256 TEXT UNIQUE NOT NULL,
        source_name TEXT NOT NULL,
        individual_id TEXT NOT NULL REFERENCES individuals(id),
        width INT,
        height INT,
        taken_at TEXT,
        latitude REAL,
        longitude REAL,
        created_at TEXT
    )
    """,
    "CREATE INDEX images_individual ON images(individual_id)",
    """
    CREATE TABLE features (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        extractor TEXT NOT NULL,
        version TEXT NOT NULL,
        kind TEXT NOT NULL CHECK(kind IN ('local', 'global')),
        count INT,
        dim INT,
        keypoints BLOB,
        data BLOB NOT NULL,
        UNIQUE(image_id, extractor, version)
    )
    """,
    # Serves iter_features / max_feature_id / count_features: one extractor's rows in
    # id order.
    "CREATE INDEX features_extractor ON features(extractor, version, id)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    f"INSERT INTO meta(key, value) VALUES ('{_EPOCH_KEY}', '0')",
)
# Statements that bring a database of version N-1 to version N.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # ArcFace class centroids: an individual known to a deep model without any photo in
    # this gallery. No cascade: renames and merges move centroids explicitly.
    2: (
        """
        CREATE TABLE centroids (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            individual_id TEXT NOT NULL REFERENCES individuals(id),
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """,
        "CREATE INDEX centroids_model ON centroids(model, version, id)",
    ),
    # The photo files are kept (indexer.photo_files): the stored file's size and the
    # decoder's format name. NULL: no file stored (enrolled before photos were kept, or
    # from pixels alone).
    3: (
        "ALTER TABLE images ADD COLUMN file_bytes INTEGER",
        "ALTER TABLE images ADD COLUMN format TEXT",
    ),
}


class StoreError(Exception):
    """Anything the store refuses or cannot do."""


class NotFound(StoreError):
    """The named individual or image does not exist."""


class Conflict(StoreError):
    """The operation would clash with existing data (an id already taken, ...)."""


class InvalidInput(StoreError):
    """A value the caller passed is of the wrong type or out of range."""


class Individual(msgspec.Struct, frozen=True, kw_only=True):
    """One animal.

    Attributes:
        id: the catalogue id, chosen by the user (e.g. "HW-0042").
        species: free-text species, if known.
        name: a nickname, if any.
        created_at: ISO 8601 UTC time the record was created.
        image_count: how many images are labelled with this individual.
    """

    id: str
    species: str | None
    name: str | None
    created_at: str
    image_count: int


class ImageRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stored photo's record.

    Attributes:
        file_bytes: the size of the stored photo file (`indexer.photo_files`); None
            when no file is stored (enrolled before photos were kept, or from pixels
            alone): only its features are.
        format: the decoder's format name ("JPEG", "PNG", ...), when known.
    """

    id: int
    sha256: str
    source_name: str
    individual_id: str
    width: int
    height: int
    taken_at: str | None
    latitude: float | None
    longitude: float | None
    created_at: str
    file_bytes: int | None = None
    format: str | None = None


class NewImage(msgspec.Struct, frozen=True, kw_only=True):
    """A photo to enrol.

    Attributes:
        sha256: lowercase hex digest of the file's bytes; the duplicate key.
        source_name: the file name the photo came with.
        individual_id: who it shows; created if absent.
        width: pixel width as loaded (EXIF orientation applied).
        height: pixel height as loaded.
        taken_at: ISO 8601 capture time, if known.
        latitude: decimal degrees, south negative, if known.
        longitude: decimal degrees, west negative, if known.
        file_bytes: the size of the photo file stored for it, if one is.
        format: the decoder's format name, e.g. "JPEG".
    """

    sha256: str
    source_name: str
    individual_id: str
    width: int
    height: int
    taken_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    file_bytes: int | None = None
    format: str | None = None


class FeatureRow(msgspec.Struct, frozen=True, kw_only=True):
    """One extractor's output for one image, as stored.

    The arrays are read-only views on the stored bytes.
    """

    id: int
    image_id: int
    extractor: str
    version: str
    features: LocalFeatures | GlobalEmbedding


FeatureInput = tuple[str, str, LocalFeatures | GlobalEmbedding]
"""(extractor name, extractor version, features) as passed to `Store.add_image`."""

_IMAGE_COLUMNS = (
    "id, sha256, source_name, individual_id, width, height, taken_at, latitude, longitude,"
    " created_at, file_bytes, format"
)
_INDIVIDUAL_SELECT = (
    "SELECT i.id, i.species, i.name, i.created_at,"
    " (SELECT COUNT(*) FROM images m WHERE m.individual_id = i.id)"
    " FROM individuals i"
)
_FEATURE_COLUMNS = "id, image_id, extractor, version, kind, count, dim, keypoints, data"


class Store:
    """The embedding database. Open with `Store.open(path)`; close it or use `with`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        """Wrap an already configured connection; use `Store.open` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.path = path

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database at `path`.

        Args:
            path: the database file; missing parent directories are created.

        Returns:
            An open store.

        Raises:
            StoreError: the file is not a SQLite database, or was written by a newer
                version of this program (its schema version is unknown here).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the module must not open transactions on its own; we
        # issue BEGIN IMMEDIATE ourselves so the write lock is taken up front and a
        # read-then-write never deadlocks against another writer.
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot enable WAL journal (got {mode!r})")
            # FULL, not NORMAL: under WAL, NORMAL may lose the last commits on power loss.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _ensure_schema(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection. Further calls raise StoreError; closing twice is fine."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ images

    def add_image(
        self,
        image: NewImage,
        species: str | None,
        features: Sequence[FeatureInput],
    ) -> tuple[int, bool]:
        """Store a photo, its label and its features in one transaction.

        The individual is created if absent; `species`, if given, is recorded on an
        individual that has none (an existing species is left alone).

        Args:
            image: the photo's record.
            species: the individual's species, if known.
            features: (extractor name, version, features) per extractor. Local
                features: keypoints (N, 4) float32 and descriptors (N, D) uint8;
                global: vector (D,) float32 with unit L2 norm.

        Returns:
            (image_id, True) when stored; (existing_id, False) when a photo with the
            same sha256 is already stored, in which case nothing is written.

        Raises:
            StoreError: a field or an array has the wrong type, shape or dtype (the
                message names the expected and the actual value); nothing is written.
        """
        _check_new_image(image)
        _check_optional_text("species", species)
        rows = _encode_features(features)
        now = _now()
        with self._write() as conn:
            existing = conn.execute(
                "SELECT id FROM images WHERE sha256 = ?", (image.sha256,)
            ).fetchone()
            if existing is not None:
                return int(existing[0]), False
            conn.execute(
                "INSERT OR IGNORE INTO individuals(id, species, name, created_at)"
                " VALUES (?, ?, NULL, ?)",
                (image.individual_id, species, now),
            )
            if species is not None:
                conn.execute(
                    "UPDATE individuals SET species = ? WHERE id = ? AND species IS NULL",
                    (species, image.individual_id),
                )
            cur = conn.execute(
                f"INSERT INTO images({_IMAGE_COLUMNS})"
                " VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    image.sha256,
                    image.source_name,
                    image.individual_id,
                    image.width,
                    image.height,
                    image.taken_at,
                    image.latitude,
                    image.longitude,
                    now,
                    image.file_bytes,
                    image.format,
                ),
            )
            image_id = int(cur.lastrowid)  # type: ignore[arg-type]
            conn.executemany(
                "INSERT INTO features(image_id, extractor, version, kind, count, dim,"
                " keypoints, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(image_id, *row) for row in rows],
            )
        return image_id, True

    def add_features(self, image_id: int, features: Sequence[FeatureInput]) -> bool:
        """Store features of an already stored photo (e.g. after the extractor changed).

        Returns:
            True when stored; False when the photo already has features of that
            extractor version (nothing is written).

        Raises:
            NotFound: no photo has this id.
            StoreError: invalid features, as for `add_image`.
        """
        _check_image_id(image_id)
        rows = _encode_features(features)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise NotFound(f"no image with id {image_id}")
            for extractor, version, *_ in rows:
                if conn.execute(
                    "SELECT 1 FROM features WHERE image_id = ? AND extractor = ? AND version = ?",
                    (image_id, extractor, version),
                ).fetchone():
                    return False
            conn.executemany(
                "INSERT INTO features(image_id, extractor, version, kind, count, dim,"
                " keypoints, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(image_id, *row) for row in rows],
            )
        return True

    def image(self, image_id: int) -> ImageRow | None:
        """The image with this id, or None."""
        _check_image_id(image_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)
            ).fetchone()
        return None if row is None else _image_row(row)

    def image_by_sha256(self, sha256: str) -> ImageRow | None:
        """The image whose file has this sha256 hex digest, or None."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else _image_row(row)

    def images_of(self, individual_id: str) -> list[ImageRow]:
        """The images labelled with this individual, oldest id first (empty if none)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images WHERE individual_id = ? ORDER BY id",
                (individual_id,),
            ).fetchall()
        return [_image_row(r) for r in rows]

    def set_file(self, image_id: int, file_bytes: int, format: str | None) -> bool:
        """Record that the photo's file is now stored (a photo enrolled before photos
        were kept, enrolled again).

        Returns:
            True if the image exists.
        """
        _check_image_id(image_id)
        _check_file_bytes(file_bytes)
        _check_optional_text("format", format)
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE images SET file_bytes = ?, format = COALESCE(?, format) WHERE id = ?",
                (file_bytes, format, image_id),
            )
        return cur.rowcount > 0

    def image_shas(self) -> set[str]:
        """The sha256 of every stored image."""
        with self._read() as conn:
            rows = conn.execute("SELECT sha256 FROM images").fetchall()
        return {str(r[0]) for r in rows}

    def image_labels(self) -> dict[int, str]:
        """Every image id mapped to its individual id."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, individual_id FROM images").fetchall()
        return {int(i): str(ind) for i, ind in rows}

    def image_sources(self) -> dict[int, str]:
        """Every image id mapped to its source (file) name."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, source_name FROM images").fetchall()
        return {int(i): str(name) for i, name in rows}

    def count_images(self) -> int:
        """How many images are stored."""
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def delete_image(self, image_id: int) -> bool:
        """Delete an image and its features; its individual stays.

        Returns:
            True if the image existed.
        """
        _check_image_id(image_id)
        with self._write() as conn:
            cur = conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            if cur.rowcount == 0:
                return False
            _bump_epoch(conn)
        return True

    # ------------------------------------------------------------------ individuals

    def individual(self, individual_id: str) -> Individual | None:
        """The individual with this id, or None."""
        with self._read() as conn:
            row = conn.execute(f"{_INDIVIDUAL_SELECT} WHERE i.id = ?", (individual_id,)).fetchone()
        return None if row is None else _individual(row)

    def list_individuals(
        self, species: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Individual]:
        """A page of individuals ordered by id.

        Args:
            species: only individuals of this species; None for all.
            limit: at most this many (>= 0).
            offset: skip this many first (>= 0).

        Returns:
            The page, possibly empty.
        """
        if limit < 0 or offset < 0:
            raise InvalidInput(f"limit and offset must be >= 0, got {limit} and {offset}")
        where, args = ("", ()) if species is None else (" WHERE i.species = ?", (species,))
        with self._read() as conn:
            rows = conn.execute(
                f"{_INDIVIDUAL_SELECT}{where} ORDER BY i.id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [_individual(r) for r in rows]

    def upsert_individual(
        self, individual_id: str, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Create an individual, or update the fields given (None leaves a field alone).

        Returns:
            The individual as stored afterwards.
        """
        _check_individual_id("individual_id", individual_id)
        _check_optional_text("species", species)
        _check_optional_text("name", name)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO individuals(id, species, name, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET"
                " species = COALESCE(excluded.species, species),"
                " name = COALESCE(excluded.name, name)",
                (individual_id, species, name, _now()),
            )
            row = conn.execute(f"{_INDIVIDUAL_SELECT} WHERE i.id = ?", (individual_id,)).fetchone()
        return _individual(row)

    def rename_individual(self, old_id: str, new_id: str) -> None:
        """Give an individual a new id, moving its images; renaming to itself is a no-op.

        Raises:
            NotFound: `old_id` does not exist.
            Conflict: `new_id` is already taken.
        """
        _check_individual_id("new_id", new_id)
        with self._write() as conn:
            if not _individual_exists(conn, old_id):
                raise NotFound(f"individual {old_id!r} not found")
            if old_id == new_id:
                return
            if _individual_exists(conn, new_id):
                raise Conflict(f"individual {new_id!r} already exists")
            # Insert-move-delete keeps every foreign key satisfied at each statement.
            conn.execute(
                "INSERT INTO individuals(id, species, name, created_at)"
                " SELECT ?, species, name, created_at FROM individuals WHERE id = ?",
                (new_id, old_id),
            )
            _move_individual(conn, old_id, new_id)
            conn.execute("DELETE FROM individuals WHERE id = ?", (old_id,))

    def merge_individuals(self, source_id: str, target_id: str) -> int:
        """Relabel every image of `source_id` as `target_id`, then delete `source_id`.

        The target keeps its species and name; those it lacks are taken from the source.

        Returns:
            How many images moved.

        Raises:
            NotFound: either individual does not exist.
            Conflict: source and target are the same.
        """
        with self._write() as conn:
            for role, ident in (("source", source_id), ("target", target_id)):
                if not _individual_exists(conn, ident):
                    raise NotFound(f"{role} individual {ident!r} not found")
            if source_id == target_id:
                raise Conflict(f"cannot merge individual {source_id!r} into itself")
            conn.execute(
                "UPDATE individuals SET"
                " species = COALESCE(species, (SELECT species FROM individuals WHERE id = ?)),"
                " name = COALESCE(name, (SELECT name FROM individuals WHERE id = ?))"
                " WHERE id = ?",
                (source_id, source_id, target_id),
            )
            moved = _move_individual(conn, source_id, target_id)
            conn.execute("DELETE FROM individuals WHERE id = ?", (source_id,))
        return int(moved)

    def delete_individual(self, individual_id: str) -> int:
        """Delete an individual with all its images and their features.

        Returns:
            How many images were deleted.

        Raises:
            NotFound: no such individual.
        """
        with self._write() as conn:
            if not _individual_exists(conn, individual_id):
                raise NotFound(f"individual {individual_id!r} not found")
            deleted = conn.execute(
                "DELETE FROM images WHERE individual_id = ?", (individual_id,)
            ).rowcount
            centroids = conn.execute(
                "DELETE FROM centroids WHERE individual_id = ?", (individual_id,)
            ).rowcount
            conn.execute("DELETE FROM individuals WHERE id = ?", (individual_id,))
            if deleted or centroids:
                _bump_epoch(conn)
        return int(deleted)

    # ------------------------------------------------------------------ features

    def iter_features(
        self, extractor: str, version: str, after_id: int = 0, batch: int = 256
    ) -> Iterator[FeatureRow]:
        """Stream one extractor's feature rows in increasing id order.

        Rows are read `batch` at a time (keyset pagination on the id), and the lock is
        released between batches, so other threads can write while an index is built.

        Args:
            extractor: extractor name.
            version: extractor version.
            after_id: yield only rows with id > after_id (0: all).
            batch: rows read per query (>= 1).

        Yields:
            FeatureRow, ids strictly increasing.
        """
        if batch < 1:
            raise StoreError(f"batch must be >= 1, got {batch}")
        last = after_id
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {_FEATURE_COLUMNS} FROM features"
                    " WHERE extractor = ? AND version = ? AND id > ? ORDER BY id LIMIT ?",
                    (extractor, version, last, batch),
                ).fetchall()
            for row in rows:
                yield _feature_row(row)
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def feature(self, image_id: int, extractor: str, version: str) -> FeatureRow | None:
        """One image's features from one extractor, or None."""
        _check_image_id(image_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_FEATURE_COLUMNS} FROM features"
                " WHERE image_id = ? AND extractor = ? AND version = ?",
                (image_id, extractor, version),
            ).fetchone()
        return None if row is None else _feature_row(row)

    def max_feature_id(self, extractor: str, version: str) -> int:
        """The largest feature id of this extractor, or 0 if it has none."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT MAX(id) FROM features WHERE extractor = ? AND version = ?",
                (extractor, version),
            ).fetchone()
        return int(row[0] or 0)

    def count_features(self, extractor: str, version: str) -> int:
        """How many feature rows this extractor has."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM features WHERE extractor = ? AND version = ?",
                (extractor, version),
            ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ centroids

    def replace_centroids(
        self, model: str, version: str, rows: Sequence[tuple[str, str | None, np.ndarray]]
    ) -> int:
        """Make `rows` the only centroids of `model`, in one transaction.

        Individuals are created when absent; a species is recorded on an individual that
        has none. Centroids of other versions of the model are removed: embeddings of
        different weights are not comparable.

        Args:
            model: the embedder's name.
            version: the embedder's version.
            rows: (individual id, species or None, (D,) float32 unit vector).

        Returns:
            How many centroids were stored.

        Raises:
            InvalidInput: a bad id, a repeated individual, or a vector that is not finite
                and unit length. Nothing is written.
        """
        _check_id("model", model)
        _check_id("version", version)
        encoded = []
        seen: set[str] = set()
        for i, (individual_id, species, vector) in enumerate(rows):
            _check_individual_id(f"rows[{i}] individual_id", individual_id)
            _check_optional_text(f"rows[{i}] species", species)
            if individual_id in seen:
                raise InvalidInput(f"rows[{i}]: individual {individual_id!r} given twice")
            seen.add(individual_id)
            blob = _encode_features([(model, version, GlobalEmbedding(vector=vector))])[0][-1]
            encoded.append((individual_id, species, blob))
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO individuals(id, species, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET species = COALESCE(species, excluded.species)",
                [(ident, species, _now()) for ident, species, _ in encoded],
            )
            conn.execute("DELETE FROM centroids WHERE model = ?", (model,))
            conn.executemany(
                "INSERT INTO centroids(individual_id, model, version, vector) VALUES (?, ?, ?, ?)",
                [(ident, model, version, blob) for ident, _, blob in encoded],
            )
            # Centroids are no feature rows: only the epoch tells followers to reload them.
            _bump_epoch(conn)
        return len(encoded)

    def centroids(self, model: str, version: str) -> tuple[np.ndarray, list[str], np.ndarray]:
        """The model's centroids: ids (N,) int64, individual ids, vectors (N, D) float32."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, individual_id, vector FROM centroids"
                " WHERE model = ? AND version = ? ORDER BY id",
                (model, version),
            ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = [np.frombuffer(r[2], dtype=_F32) for r in rows]
        stacked = np.stack(vectors).astype(np.float32) if vectors else np.empty((0, 0), np.float32)
        return ids, [r[1] for r in rows], stacked

    # ------------------------------------------------------------------ meta

    def marker(self) -> tuple[int, int]:
        """(epoch, largest feature id of any extractor): it changes with every committed
        write that a search index must follow, whichever process made it."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT value FROM meta WHERE key = ?), (SELECT MAX(id) FROM features)",
                (_EPOCH_KEY,),
            ).fetchone()
        return int(row[0]), int(row[1] or 0)

    def epoch(self) -> int:
        """A counter bumped by every removal of features or relabelling of an image.

        Additions never bump it: an index built at epoch E that has every feature id up
        to M is current iff the epoch is still E, and needs only the rows after M.
        """
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_EPOCH_KEY,)).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ plumbing

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may already have rolled back (e.g. on some I/O errors).
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"{self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc


# ---------------------------------------------------------------------- schema


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    # Checked inside the write lock so two processes opening a new file at once do not
    # both create the schema.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this program's"
                f" ({SCHEMA_VERSION}); upgrade the program to open this database"
            )
        if version == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
            version = 1
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _move_individual(conn: sqlite3.Connection, old_id: str, new_id: str) -> int:
    """Relabel images and centroids; bumps the epoch if anything moved. Returns the
    number of images moved."""
    moved = conn.execute(
        "UPDATE images SET individual_id = ? WHERE individual_id = ?", (new_id, old_id)
    ).rowcount
    centroids = conn.execute(
        "UPDATE centroids SET individual_id = ? WHERE individual_id = ?", (new_id, old_id)
    ).rowcount
    if moved or centroids:
        _bump_epoch(conn)
    return int(moved)


def _bump_epoch(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (_EPOCH_KEY,))


def _individual_exists(conn: sqlite3.Connection, individual_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM individuals WHERE id = ?", (individual_id,)).fetchone()
    return row is not None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- rows


def _image_row(row: tuple) -> ImageRow:
    return ImageRow(
        id=row[0],
        sha256=row[1],
        source_name=row[2],
        individual_id=row[3],
        width=row[4],
        height=row[5],
        taken_at=row[6],
        latitude=row[7],
        longitude=row[8],
        created_at=row[9],
        file_bytes=row[10],
        format=row[11],
    )


def _individual(row: tuple) -> Individual:
    return Individual(id=row[0], species=row[1], name=row[2], created_at=row[3], image_count=row[4])


def _feature_row(row: tuple) -> FeatureRow:
    fid, image_id, extractor, version, kind, count, dim, keypoints, data = row
    features: LocalFeatures | GlobalEmbedding
    if kind == "local":
        if len(keypoints) != count * 4 * _F32.itemsize or len(data) != count * dim:
            raise StoreError(f"feature row {fid}: blob sizes do not match ({count}, {dim})")
        features = LocalFeatures(
            keypoints=np.frombuffer(keypoints, dtype=_F32)
            .astype(np.float32, copy=False)
            .reshape(count, 4),
            descriptors=np.frombuffer(data, dtype=_U8).reshape(count, dim),
        )
    else:
        if len(data) != dim * _F32.itemsize:
            raise StoreError(f"feature row {fid}: blob size does not match ({dim},)")
        features = GlobalEmbedding(
            vector=np.frombuffer(data, dtype=_F32).astype(np.float32, copy=False)
        )
    return FeatureRow(
        id=fid, image_id=image_id, extractor=extractor, version=version, features=features
    )


# ---------------------------------------------------------------------- validation


def _check_id(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: expected a non-empty str, got {value!r}")


def _check_image_id(value: object) -> None:
    # SQLite integers are 64-bit: a larger id would fail inside sqlite3 (OverflowError)
    # instead of simply matching no row.
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise InvalidInput(f"image_id: expected a 64-bit int, got {value!r}")


def _check_individual_id(field: str, value: object) -> None:
    _check_id(field, value)
    # An id is one path segment of the HTTP API (/v1/individuals/{id}); a slash would
    # make the individual unreachable there.
    if "/" in value:  # type: ignore[operator]
        raise InvalidInput(f"{field}: must not contain '/', got {value!r}")


def _check_file_bytes(value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInput(f"file_bytes: expected a positive int or None, got {value!r}")


def _check_optional_text(field: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field}: expected str or None, got {type(value).__name__}")


def _check_new_image(image: NewImage) -> None:
    if not isinstance(image, NewImage):
        raise InvalidInput(f"image: expected NewImage, got {type(image).__name__}")
    if not isinstance(image.sha256, str) or not _SHA256_RE.fullmatch(image.sha256):
        raise InvalidInput(f"sha256: expected 64 lowercase hex characters, got {image.sha256!r}")
    _check_id("source_name", image.source_name)
    _check_individual_id("individual_id", image.individual_id)
    for field in ("width", "height"):
        value = getattr(image, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{field}: expected a positive int, got {value!r}")
    _check_optional_text("taken_at", image.taken_at)
    _check_file_bytes(image.file_bytes)
    _check_optional_text("format", image.format)
    for field, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = getattr(image, field)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -bound <= float(value) <= bound
        ):
            raise InvalidInput(f"{field}: expected a number in [-{bound}, {bound}], got {value!r}")


def _check_array(label: str, arr: object, ndim: int, dtype: type) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise InvalidInput(f"{label}: expected np.ndarray, got {type(arr).__name__}")
    if arr.dtype != np.dtype(dtype):
        raise InvalidInput(f"{label}: expected dtype {np.dtype(dtype)}, got {arr.dtype}")
    if arr.ndim != ndim:
        raise InvalidInput(f"{label}: expected {ndim}-D array, got shape {arr.shape}")
    return arr


def _encode_features(
    features: Sequence[FeatureInput],
) -> list[tuple[str, str, str, int, int, bytes | None, bytes]]:
    """Validate and serialise every entry before the transaction starts.

    Returns:
        Rows of (extractor, version, kind, count, dim, keypoints blob, data blob).
    """
    rows = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(features):
        if not isinstance(entry, tuple) or len(entry) != 3:
            raise InvalidInput(f"features[{i}]: expected (extractor, version, features)")
        extractor, version, feats = entry
        _check_id(f"features[{i}] extractor", extractor)
        _check_id(f"features[{i}] version", version)
        if (extractor, version) in seen:
            raise InvalidInput(f"features[{i}]: {extractor!r} {version!r} given twice")
        seen.add((extractor, version))
        label = f"features[{i}] ({extractor} {version})"
        if isinstance(feats, LocalFeatures):
            kp = _check_array(f"{label} keypoints", feats.keypoints, 2, np.float32)
            desc = _check_array(f"{label} descriptors", feats.descriptors, 2, np.uint8)
            if kp.shape[1] != 4:
                raise InvalidInput(f"{label} keypoints: expected shape (N, 4), got {kp.shape}")
            if desc.shape[0] != kp.shape[0] or desc.shape[1] < 1:
                raise InvalidInput(
                    f"{label} descriptors: expected shape ({kp.shape[0]}, D>=1), got {desc.shape}"
                )
            if not np.isfinite(kp).all():
                raise InvalidInput(f"{label} keypoints: expected finite values, got NaN or inf")
            rows.append(
                (
                    extractor,
                    version,
                    "local",
                    int(kp.shape[0]),
                    int(desc.shape[1]),
                    np.ascontiguousarray(kp, dtype=_F32).tobytes(),
                    np.ascontiguousarray(desc).tobytes(),
                )
            )
        elif isinstance(feats, GlobalEmbedding):
            vec = _check_array(f"{label} vector", feats.vector, 1, np.float32)
            if vec.shape[0] < 1:
                raise InvalidInput(f"{label} vector: expected shape (D>=1,), got {vec.shape}")
            if not np.isfinite(vec).all():
                raise InvalidInput(f"{label} vector: expected finite values, got NaN or inf")
            norm = float(np.linalg.norm(vec.astype(np.float64)))
            if abs(norm - 1.0) > 1e-3:
                raise InvalidInput(f"{label} vector: expected unit L2 norm, got {norm:.6g}")
            rows.append(
                (
                    extractor,
                    version,
                    "global",
                    1,
                    int(vec.shape[0]),
                    None,
                    np.ascontiguousarray(vec, dtype=_F32).tobytes(),
                )
            )
        else:
            raise InvalidInput(
                f"{label}: expected LocalFeatures or GlobalEmbedding, got {type(feats).__name__}"
            )
    return rows
