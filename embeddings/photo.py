"""Decoded photographs: pixels plus the metadata a sighting record needs."""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

ImageErrorReason = Literal["corrupted_image", "unsupported_format", "too_large", "low_confidence"]
"""low_confidence: decoded, but too little texture to be matched (blank, blurred, tiny)."""


class ImageError(Exception):
    """A photo that cannot be used, with a machine-readable reason and a human message."""

    def __init__(self, reason: ImageErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason: ImageErrorReason = reason
        self.message = message


class Photo(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded photo.

    Attributes:
        pixels: (H, W, 3) uint8 RGB, EXIF orientation already applied.
        sha256: hex digest of the file's bytes (the duplicate key).
        format: the decoder's format name, e.g. "JPEG", "PNG", "HEIF".
        taken_at: EXIF DateTimeOriginal as ISO 8601 ("2019-07-04T13:05:00"), if present.
        latitude: EXIF GPS latitude in decimal degrees (south negative), if present.
        longitude: EXIF GPS longitude in decimal degrees (west negative), if present.
        content: the file's original bytes, as decoded (set by `load_photo`), so that a
            gallery can keep the photo; empty when the photo was made from pixels alone,
            in which case nothing but its features can be stored.
    """

    pixels: np.ndarray
    sha256: str
    format: str
    taken_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    content: bytes = b""

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def long_side(self) -> int:
        """The longer of width and height, in pixels."""
        return int(max(self.pixels.shape[:2]))


class Box(msgspec.Struct, frozen=True, array_like=True):
    """A rectangle in a photo's pixels, [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def whole(cls, photo: Photo) -> Box:
        return cls(0, 0, photo.width, photo.height)

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def overlaps(self, other: Box) -> bool:
        return (
            self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1
        )

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def union(boxes: list[Box]) -> Box:
    """The smallest box holding all of `boxes` (at least one)."""
    return Box(
        min(b.x0 for b in boxes),
        min(b.y0 for b in boxes),
        max(b.x1 for b in boxes),
        max(b.y1 for b in boxes),
    )
