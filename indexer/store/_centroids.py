"""The `centroids` table: ArcFace class centroids, individuals known to a deep model
without any photo in this gallery."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embeddings.protocol import GlobalEmbedding
from indexer.store._checks import (
    check_id,
    check_individual_id,
    check_optional_text,
    encode_features,
)
from indexer.store._connection import Connection
from indexer.store._errors import InvalidInput
from indexer.store._rows import F32, utc_now
from indexer.store._schema import bump_epoch

__all__ = ["CentroidTable"]


class CentroidTable(Connection):
    """Reads and writes of centroids."""

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
        check_id("model", model)
        check_id("version", version)
        encoded = []
        seen: set[str] = set()
        for i, (individual_id, species, vector) in enumerate(rows):
            check_individual_id(f"rows[{i}] individual_id", individual_id)
            check_optional_text(f"rows[{i}] species", species)
            if individual_id in seen:
                raise InvalidInput(f"rows[{i}]: individual {individual_id!r} given twice")
            seen.add(individual_id)
            blob = encode_features([(model, version, GlobalEmbedding(vector=vector))])[0][-1]
            encoded.append((individual_id, species, blob))
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO individuals(id, species, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET species = COALESCE(species, excluded.species)",
                [(ident, species, utc_now()) for ident, species, _ in encoded],
            )
            conn.execute("DELETE FROM centroids WHERE model = ?", (model,))
            conn.executemany(
                "INSERT INTO centroids(individual_id, model, version, vector) VALUES (?, ?, ?, ?)",
                [(ident, model, version, blob) for ident, _, blob in encoded],
            )
            # Centroids are no feature rows: only the epoch tells followers to reload them.
            bump_epoch(conn)
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
        vectors = [np.frombuffer(r[2], dtype=F32) for r in rows]
        stacked = np.stack(vectors).astype(np.float32) if vectors else np.empty((0, 0), np.float32)
        return ids, [r[1] for r in rows], stacked
