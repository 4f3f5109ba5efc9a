"""What a catalogue stores of a photo besides its file: the features of each extractor,
and the photo's record without pixels. Enrolment describes photos here, in the writing
process or on cluster workers (`cluster.describe`), with the same result either way.
"""

from __future__ import annotations

import msgspec

from embeddings.keypoints import RootSiftExtractor
from embeddings.photo import ImageError, Photo
from embeddings.protocol import GlobalEmbedding, GlobalExtractor, LocalFeatures, Locator
from indexer.results import LOW_CONFIDENCE

__all__ = ["DescribedPhoto", "Describer", "Feature", "PhotoRecord"]

Feature = tuple[str, str, LocalFeatures | GlobalEmbedding]
"""(extractor name, extractor version, features) as the store keeps them."""


class PhotoRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A photo as the catalogue stores it: the file and its sighting metadata, no pixels."""

    sha256: str
    format: str
    width: int
    height: int
    taken_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    content: bytes = b""
    """The file's bytes; empty when the photo was made from pixels alone."""

    @classmethod
    def of(cls, photo: Photo) -> PhotoRecord:
        return cls(
            sha256=photo.sha256,
            format=photo.format,
            width=photo.width,
            height=photo.height,
            taken_at=photo.taken_at,
            latitude=photo.latitude,
            longitude=photo.longitude,
            content=photo.content,
        )


class DescribedPhoto(msgspec.Struct, frozen=True, kw_only=True):
    """A photo ready to store: its record and the features of every extractor."""

    record: PhotoRecord
    features: list[Feature]


class Describer:
    """Extracts the features a catalogue keeps of a photo.

    Args:
        extractor: the local-feature extractor.
        embedder: the deep embedder, if a model is loaded.
        locator: finds the animals in a whole frame, whose region alone is described.
        min_features: fewest keypoints of an enrolled photo (as for a query).
    """

    def __init__(
        self,
        extractor: RootSiftExtractor,
        embedder: GlobalExtractor | None,
        locator: Locator | None,
        min_features: int,
    ) -> None:
        self.extractor = extractor
        self.embedder = embedder
        self.locator = locator
        self.min_features = min_features

    @property
    def versions(self) -> dict[str, str]:
        """name -> version of every extractor whose features are kept."""
        names = {self.extractor.name: self.extractor.version}
        if self.embedder is not None:
            names[self.embedder.name] = self.embedder.version
        return names

    def describe(self, photo: Photo, wanted: set[str] | None = None) -> list[Feature]:
        """The features of the extractors named in `wanted` (default: all).

        Raises:
            ImageError: "low_confidence", too little texture to be matched, and no deep
                model is loaded to find the photo by its embedding.
        """
        wanted = set(self.versions) if wanted is None else wanted
        described: list[Feature] = []
        if self.extractor.name in wanted:
            region = None if self.locator is None else self.locator.region(photo)
            features = self.extractor.extract(photo, region)
            if self.embedder is None and len(features.descriptors) < self.min_features:
                raise ImageError("low_confidence", LOW_CONFIDENCE)
            described.append((self.extractor.name, self.extractor.version, features))
        if self.embedder is not None and self.embedder.name in wanted:
            described.append(
                (self.embedder.name, self.embedder.version, self.embedder.extract(photo))
            )
        return described

    def described(self, photo: Photo) -> DescribedPhoto:
        """The photo's record with every feature."""
        return DescribedPhoto(record=PhotoRecord.of(photo), features=self.describe(photo))
