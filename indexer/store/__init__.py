"""The SQLite embedding database: individuals, images and their features.

This is the source of truth. FAISS indexes are derived from it and can always be rebuilt
from it; the pair (`Store.epoch()`, `Store.max_feature_id()`) tells an index whether it
is stale (the epoch moved: rebuild) or only behind (newer feature ids: add them).

Durability: WAL journal with `synchronous=FULL`, so a write acknowledged by a returning
method is on disk before it returns and survives the process being killed.

Thread-safety: one connection, guarded by a lock; every write is one `BEGIN IMMEDIATE`
transaction, so a failure half-way leaves nothing written.

The package holds one module per job: the schema and its migrations (`_schema`), the row
Structs and their decoders (`_rows`), the input checks (`_checks`), the connection and its
transactions (`_connection`), and one class per table, which `Store` combines.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexer.store._calibrations import CalibrationTable
from indexer.store._centroids import CentroidTable
from indexer.store._errors import Conflict, InvalidInput, NotFound, StoreError
from indexer.store._features import FeatureTable
from indexer.store._images import ImageTable
from indexer.store._individuals import IndividualTable
from indexer.store._rows import FeatureRow, ImageRow, Individual, NewImage
from indexer.store._schema import EPOCH_KEY, SCHEMA_VERSION, ensure_schema

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

DATABASE_FILE = "whaleid.sqlite3"
"""The database's file name inside a data folder."""

_BUSY_TIMEOUT_MS = 10_000


class Store(ImageTable, IndividualTable, FeatureTable, CentroidTable, CalibrationTable):
    """The embedding database. Open with `Store.open(path)`; close it or use `with`."""

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
            ensure_schema(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    # ------------------------------------------------------------------ meta

    def marker(self) -> tuple[int, int, int]:
        """(epoch, largest feature id of any extractor, largest calibration id): it changes
        with every committed write that a search must follow, whichever process made it."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT value FROM meta WHERE key = ?), (SELECT MAX(id) FROM features),"
                " (SELECT MAX(id) FROM calibrations)",
                (EPOCH_KEY,),
            ).fetchone()
        return int(row[0]), int(row[1] or 0), int(row[2] or 0)

    def epoch(self) -> int:
        """A counter bumped by every removal of features or relabelling of an image.

        Additions never bump it: an index built at epoch E that has every feature id up
        to M is current iff the epoch is still E, and needs only the rows after M.
        """
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (EPOCH_KEY,)).fetchone()
        return int(row[0])
