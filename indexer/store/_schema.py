"""The database's tables, the migrations between schema versions, and the epoch counter
kept in the `meta` table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from indexer.store._errors import StoreError

__all__ = ["EPOCH_KEY", "SCHEMA_VERSION", "bump_epoch", "ensure_schema"]

SCHEMA_VERSION = 4
"""Stored in `PRAGMA user_version`; bump it with a migration when the schema changes."""

EPOCH_KEY = "store.epoch"

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
    # Serves iter_features / max_feature_id / count_features / count_descriptors: one
    # extractor's rows in id order.
    "CREATE INDEX features_extractor ON features(extractor, version, id)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    f"INSERT INTO meta(key, value) VALUES ('{EPOCH_KEY}', '0')",
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
    # Probability calibrations, fitted by whichever process saw the catalogue grow and
    # read by every other: the truth, not a cache beside the index. Ids only increase,
    # so the largest tells a reader whether its copy is current.
    4: (
        """
        CREATE TABLE calibrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL,
            data BLOB NOT NULL
        )
        """,
        "CREATE INDEX calibrations_key ON calibrations(key, id)",
    ),
}


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
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


def bump_epoch(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (EPOCH_KEY,))
