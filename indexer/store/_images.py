"""The `images` table: storing photos with their label and features, and reading them."""

from __future__ import annotations

from collections.abc import Sequence

from indexer.store._checks import (
    check_file_bytes,
    check_image_id,
    check_individual_id,
    check_new_image,
    check_optional_text,
    encode_features,
)
from indexer.store._connection import Connection
from indexer.store._errors import NotFound
from indexer.store._rows import IMAGE_COLUMNS, FeatureInput, ImageRow, NewImage, image_row, utc_now
from indexer.store._schema import bump_epoch

__all__ = ["ImageTable"]


class ImageTable(Connection):
    """Reads and writes of stored photos."""

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
        check_new_image(image)
        check_optional_text("species", species)
        rows = encode_features(features)
        now = utc_now()
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
                f"INSERT INTO images({IMAGE_COLUMNS})"
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

    def image(self, image_id: int) -> ImageRow | None:
        """The image with this id, or None."""
        check_image_id(image_id)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)
            ).fetchone()
        return None if row is None else image_row(row)

    def image_by_sha256(self, sha256: str) -> ImageRow | None:
        """The image whose file has this sha256 hex digest, or None."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else image_row(row)

    def images_of(self, individual_id: str) -> list[ImageRow]:
        """The images labelled with this individual, oldest id first (empty if none)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {IMAGE_COLUMNS} FROM images WHERE individual_id = ? ORDER BY id",
                (individual_id,),
            ).fetchall()
        return [image_row(r) for r in rows]

    def set_file(self, image_id: int, file_bytes: int, format: str | None) -> bool:
        """Record that the photo's file is now stored (a photo enrolled before photos
        were kept, enrolled again).

        Returns:
            True if the image exists.
        """
        check_image_id(image_id)
        check_file_bytes(file_bytes)
        check_optional_text("format", format)
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

    def count_images(self) -> int:
        """How many images are stored."""
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def delete_image(self, image_id: int) -> bool:
        """Delete an image and its features; its individual stays.

        Returns:
            True if the image existed.
        """
        check_image_id(image_id)
        with self._write() as conn:
            cur = conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            if cur.rowcount == 0:
                return False
            bump_epoch(conn)
        return True

    def move_image(self, image_id: int, individual_id: str, species: str | None = None) -> None:
        """Relabel one photo (a reviewer moved it); the individual is created if absent.

        Raises:
            NotFound: no such image.
        """
        check_image_id(image_id)
        check_individual_id("individual_id", individual_id)
        check_optional_text("species", species)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise NotFound(f"image {image_id} not found")
            conn.execute(
                "INSERT INTO individuals(id, species, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET species = COALESCE(species, excluded.species)",
                (individual_id, species, utc_now()),
            )
            conn.execute(
                "UPDATE images SET individual_id = ? WHERE id = ?", (individual_id, image_id)
            )
            bump_epoch(conn)
