"""What every feature extractor returns and promises, weight-free or deep."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import msgspec
import numpy as np

from embeddings.photo import Box, Photo

FeatureKind = Literal["local", "global"]


class LocalFeatures(msgspec.Struct, frozen=True, kw_only=True):
    """Keypoints and descriptors of one photo.

    Attributes:
        keypoints: (N, 4) float32 rows of x, y, scale, angle (degrees), in the pixel
            coordinates of the photo as loaded (EXIF orientation applied).
        descriptors: (N, D) uint8, each row a quantised L2-normalised descriptor
            (value = round(255 * component)).
    """

    keypoints: np.ndarray
    descriptors: np.ndarray


class GlobalEmbedding(msgspec.Struct, frozen=True, kw_only=True):
    """One L2-normalised vector for the whole photo: (D,) float32."""

    vector: np.ndarray


@runtime_checkable
class Extractor(Protocol):
    """A named, versioned callable from a photo to features.

    `name` and `version` are stored beside every feature row, so features made by another
    extractor or another version are never mixed into one index.
    """

    name: str
    version: str
    kind: FeatureKind

    def extract(self, photo: Photo) -> LocalFeatures | GlobalEmbedding: ...


@runtime_checkable
class GlobalExtractor(Protocol):
    """An extractor of one `dim`-long unit vector per photo (a deep embedder)."""

    name: str
    version: str
    dim: int
    crop_side: int
    """Photos whose longer side is at most this many pixels are crops prepared on the
    animal and are not searched by this embedder; 0: every photo is."""

    def extract(self, photo: Photo) -> GlobalEmbedding: ...


@runtime_checkable
class Locator(Protocol):
    """Finds the animals in a photo (`embeddings.locator.Lite0Locator`)."""

    name: str
    version: str

    def locate(self, photo: Photo) -> list[Box]:
        """The animals' boxes, hottest first; [the whole photo] for a crop."""
        ...

    def region(self, photo: Photo) -> Box | None:
        """The part of the photo whose features are stored when it is enrolled: every
        animal found; None for the whole photo."""
        ...
