"""The `features` table: each extractor's output per photo, streamed in id order to the
search indexes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from indexer.store._checks import check_image_id, encode_features
from indexer.store._connection import Connection
from indexer.store._errors import NotFound, StoreError
from indexer.store._rows import (
    FEATURE_COLUMNS,
    FeatureInput,
    FeatureRow,
    feature_row,
    keypoints_array,
)

__all__ = ["FeatureTable"]


class FeatureTable(Connection):
    """Reads and writes of feature rows."""

    def add_features(self, image_id: int, features: Sequence[FeatureInput]) -> bool:
        """Store features of an already stored photo (e.g. after the extractor changed).

        Returns:
            True when stored; False when the photo already has features of that
            extractor version (nothing is written).

        Raises:
            NotFound: no photo has this id.
            StoreError: invalid features, as for `add_image`.
        """
        check_image_id(image_id)
        rows = encode_features(features)
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
                    f"SELECT {FEATURE_COLUMNS} FROM features"
                    " WHERE extractor = ? AND version = ? AND id > ? ORDER BY id LIMIT ?",
                    (extractor, version, last, batch),
                ).fetchall()
            for row in rows:
                yield feature_row(row)
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def iter_keypoints(
        self, extractor: str, version: str, up_to_id: int, batch: int = 1024
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(image id, (N, 4) keypoints) of one extractor's local feature rows with id up
        to `up_to_id`, in id order, without reading their descriptors (what a saved
        index lacks). Read `batch` rows at a time, as `iter_features`.
        """
        last = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    "SELECT id, image_id, count, keypoints FROM features"
                    " WHERE extractor = ? AND version = ? AND kind = 'local' AND id > ?"
                    " AND id <= ? ORDER BY id LIMIT ?",
                    (extractor, version, last, up_to_id, batch),
                ).fetchall()
            for fid, image_id, count, keypoints in rows:
                yield image_id, keypoints_array(fid, count, keypoints)
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def feature(self, image_id: int, extractor: str, version: str) -> FeatureRow | None:
        """One image's features from one extractor, or None."""
        check_image_id(image_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {FEATURE_COLUMNS} FROM features"
                " WHERE image_id = ? AND extractor = ? AND version = ?",
                (image_id, extractor, version),
            ).fetchone()
        return None if row is None else feature_row(row)

    def max_feature_id(self, extractor: str, version: str) -> int:
        """The largest feature id of this extractor, or 0 if it has none."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT MAX(id) FROM features WHERE extractor = ? AND version = ?",
                (extractor, version),
            ).fetchone()
        return int(row[0] or 0)

    def count_descriptors(self, extractor: str, version: str, after_id: int = 0) -> int:
        """How many descriptors (keypoints) this extractor's feature rows hold, in rows
        with an id above `after_id`."""
        return self._total("SUM(count)", extractor, version, after_id)

    def count_features(self, extractor: str, version: str, after_id: int = 0) -> int:
        """How many feature rows this extractor has (with an id above `after_id`)."""
        return self._total("COUNT(*)", extractor, version, after_id)

    def _total(self, aggregate: str, extractor: str, version: str, after_id: int) -> int:
        """`aggregate` (an SQL expression, never user input) over this extractor's rows
        with an id above `after_id`; 0 where there are none."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT COALESCE({aggregate}, 0) FROM features"
                " WHERE extractor = ? AND version = ? AND id > ?",
                (extractor, version, after_id),
            ).fetchone()
        return int(row[0])
