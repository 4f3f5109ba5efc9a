"""The store's rows as msgspec Structs, and their decoding from SQL rows.

Each `*_COLUMNS` / `*_SELECT` sits beside the decoder that reads its columns by position.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np

from embeddings.protocol import GlobalEmbedding, LocalFeatures
from indexer.store._errors import StoreError

__all__ = [
    "F32",
    "FEATURE_COLUMNS",
    "IMAGE_COLUMNS",
    "INDIVIDUAL_SELECT",
    "U8",
    "FeatureInput",
    "FeatureRow",
    "ImageRow",
    "Individual",
    "NewImage",
    "feature_row",
    "image_row",
    "individual_row",
    "keypoints_array",
    "utc_now",
]

# Little-endian on disk whatever the host, so a database file can be copied between
# machines.
F32 = np.dtype("<f4")
U8 = np.dtype("u1")


class Individual(msgspec.Struct, frozen=True, kw_only=True):
    """One animal.

    Attributes:
        id: the catalogue id, chosen by the user (e.g. "HW-0042").
        species: free-text species, if known.
        name: a nickname, if any.
        created_at: ISO 8601 UTC time the record was created.
        image_count: how many images are labelled with this individual.
        cover_image_id: one of its photos with a stored file (the first enrolled), to
            show it by; None when it has none.
    """

    id: str
    species: str | None
    name: str | None
    created_at: str
    image_count: int
    cover_image_id: int | None = None


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

IMAGE_COLUMNS = (
    "id, sha256, source_name, individual_id, width, height, taken_at, latitude, longitude,"
    " created_at, file_bytes, format"
)
INDIVIDUAL_SELECT = (
    "SELECT i.id, i.species, i.name, i.created_at,"
    " (SELECT COUNT(*) FROM images m WHERE m.individual_id = i.id),"
    " (SELECT MIN(m.id) FROM images m WHERE m.individual_id = i.id AND m.file_bytes IS NOT NULL)"
    " FROM individuals i"
)
FEATURE_COLUMNS = "id, image_id, extractor, version, kind, count, dim, keypoints, data"


def image_row(row: tuple) -> ImageRow:
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


def individual_row(row: tuple) -> Individual:
    return Individual(
        id=row[0],
        species=row[1],
        name=row[2],
        created_at=row[3],
        image_count=row[4],
        cover_image_id=row[5],
    )


def keypoints_array(fid: int, count: int, blob: bytes) -> np.ndarray:
    """Feature row `fid`'s (count, 4) keypoints, a read-only view on the stored bytes."""
    if len(blob) != count * 4 * F32.itemsize:
        raise StoreError(f"feature row {fid}: blob sizes do not match ({count}, 4)")
    return np.frombuffer(blob, dtype=F32).astype(np.float32, copy=False).reshape(count, 4)


def feature_row(row: tuple) -> FeatureRow:
    fid, image_id, extractor, version, kind, count, dim, keypoints, data = row
    features: LocalFeatures | GlobalEmbedding
    if kind == "local":
        if len(data) != count * dim:
            raise StoreError(f"feature row {fid}: blob sizes do not match ({count}, {dim})")
        features = LocalFeatures(
            keypoints=keypoints_array(fid, count, keypoints),
            descriptors=np.frombuffer(data, dtype=U8).reshape(count, dim),
        )
    else:
        if len(data) != dim * F32.itemsize:
            raise StoreError(f"feature row {fid}: blob size does not match ({dim},)")
        features = GlobalEmbedding(
            vector=np.frombuffer(data, dtype=F32).astype(np.float32, copy=False)
        )
    return FeatureRow(
        id=fid, image_id=image_id, extractor=extractor, version=version, features=features
    )


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
