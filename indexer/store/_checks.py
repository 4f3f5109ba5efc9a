"""Checks of the values callers pass to the store, and the encoding of features into
blobs; both run before a transaction starts, so a bad value writes nothing."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from embeddings.protocol import GlobalEmbedding, LocalFeatures
from indexer.store._errors import InvalidInput
from indexer.store._rows import F32, FeatureInput, NewImage

__all__ = [
    "check_file_bytes",
    "check_id",
    "check_image_id",
    "check_individual_id",
    "check_new_image",
    "check_optional_text",
    "encode_features",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


MAX_ID_LENGTH = 128
"""Longest individual id: catalogue ids are short codes or names, not documents."""


def check_id(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: expected a non-empty str, got {value!r}")


def check_image_id(value: object) -> None:
    # SQLite integers are 64-bit: a larger id would fail inside sqlite3 (OverflowError)
    # instead of simply matching no row.
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise InvalidInput(f"image_id: expected a 64-bit int, got {value!r}")


def check_individual_id(field: str, value: object) -> None:
    """An individual id: printable text of at most `MAX_ID_LENGTH` characters, in Unicode
    NFC (so one name is one individual however a keyboard spelled it; `indexer.catalogue`
    normalises), usable as one segment of an HTTP path."""
    check_id(field, value)
    assert isinstance(value, str)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{field}: at most {MAX_ID_LENGTH} characters, got {len(value)}")
    # An id is one path segment of the HTTP API (/v1/individuals/{id}); a slash would
    # make the individual unreachable there, "." or ".." would name another path, and a
    # "%" is read as an escape by every client and proxy that forgets to encode it.
    if "/" in value or "%" in value:
        raise InvalidInput(f"{field}: must not contain '/' or '%', got {value!r}")
    if value in (".", ".."):
        raise InvalidInput(f"{field}: {value!r} is not an id")
    if value != value.strip() or any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput(
            f"{field}: no control characters, and no spaces at either end, got {value!r}"
        )
    if unicodedata.normalize("NFC", value) != value:
        raise InvalidInput(f"{field}: must be in Unicode NFC form, got {value!r}")


def check_file_bytes(value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInput(f"file_bytes: expected a positive int or None, got {value!r}")


def check_optional_text(field: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field}: expected str or None, got {type(value).__name__}")


def check_new_image(image: NewImage) -> None:
    if not isinstance(image, NewImage):
        raise InvalidInput(f"image: expected NewImage, got {type(image).__name__}")
    if not isinstance(image.sha256, str) or not _SHA256_RE.fullmatch(image.sha256):
        raise InvalidInput(f"sha256: expected 64 lowercase hex characters, got {image.sha256!r}")
    check_id("source_name", image.source_name)
    check_individual_id("individual_id", image.individual_id)
    for field in ("width", "height"):
        value = getattr(image, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{field}: expected a positive int, got {value!r}")
    check_optional_text("taken_at", image.taken_at)
    check_file_bytes(image.file_bytes)
    check_optional_text("format", image.format)
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


def encode_features(
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
        check_id(f"features[{i}] extractor", extractor)
        check_id(f"features[{i}] version", version)
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
                    np.ascontiguousarray(kp, dtype=F32).tobytes(),
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
                    np.ascontiguousarray(vec, dtype=F32).tobytes(),
                )
            )
        else:
            raise InvalidInput(
                f"{label}: expected LocalFeatures or GlobalEmbedding, got {type(feats).__name__}"
            )
    return rows
