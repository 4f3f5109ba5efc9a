"""The catalogue as its users see it: individuals and their photos, read and changed.

Each change is one committed database write; the searches follow it (`indexer.follower`),
here at once and in any other process on its next answer. Photo files are kept under
`<data_dir>/photos/` (`indexer.photo_files`): enrolment writes the file before the row
commits, so a crash never leaves a row without its file (a file whose row never committed
is swept when the gallery opens), and deletions remove files after the row.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from embeddings.images import load_photo_file
from embeddings.keypoints import RootSiftExtractor
from embeddings.photo import ImageError, Photo
from embeddings.protocol import GlobalExtractor, Locator
from indexer.centroids import CentroidRow
from indexer.describer import DescribedPhoto, Describer, Feature, PhotoRecord
from indexer.photo_files import PhotoFiles
from indexer.results import EnrolResult, Progress, Reextraction, Unextracted
from indexer.store import (
    Conflict,
    ImageRow,
    Individual,
    InvalidInput,
    NewImage,
    NotFound,
    Store,
    StoreError,
)

__all__ = ["REEXTRACT_MAX_PIXELS", "Catalogue", "DescribeFiles", "PhotoElsewhere"]

REEXTRACT_MAX_PIXELS = 200_000_000
"""Stored photos were accepted when enrolled: re-extraction decodes them under this
generous limit rather than the upload limit of the day."""

DescribeFiles = Callable[[list[Path]], Iterator[DescribedPhoto | ImageError]]
"""describe(photo files) -> each described, or the `ImageError` that refused it, in order."""


class PhotoElsewhere(Conflict):
    """The photo is already in the catalogue under another individual."""

    def __init__(self, image_id: int, stored_as: str, requested: str) -> None:
        super().__init__(
            f"this photo is already image {image_id} of individual {stored_as!r}; to move it"
            f" to {requested!r}, send it again with move=true"
        )
        self.image_id = image_id
        self.individual_id = stored_as


class Catalogue:
    """Reads and writes of the catalogue.

    Args:
        store: the database.
        photos: the photo files.
        extractor: the local-feature extractor of enrolled photos.
        embedder: the deep embedder, if a model is loaded.
        locator: finds the animals in a whole frame, whose region alone is described.
        changed: called after every committed change (the follower's `catch_up`).
        min_features: fewest keypoints of an enrolled photo (as for a query).
    """

    def __init__(
        self,
        store: Store,
        photos: PhotoFiles,
        extractor: RootSiftExtractor,
        embedder: GlobalExtractor | None,
        changed: Callable[[], None],
        min_features: int,
        locator: Locator | None = None,
    ) -> None:
        self.store = store
        self.photos = photos
        self.describer = Describer(extractor, embedder, locator, min_features)
        self._changed = changed

    # ------------------------------------------------------------------ reads

    def individual(self, individual_id: str) -> Individual | None:
        return self.store.individual(canonical_id(individual_id))

    def list_individuals(
        self,
        species: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
    ) -> list[Individual]:
        """A page of individuals in id order, optionally of one species, optionally those
        whose id or name contains `search` (spelt as ids are stored: NFC)."""
        if search is not None:
            search = unicodedata.normalize("NFC", search)
        return self.store.list_individuals(species, limit, offset, search)

    def image(self, image_id: int) -> ImageRow | None:
        return self.store.image(image_id)

    def images_of(self, individual_id: str) -> list[ImageRow]:
        return self.store.images_of(canonical_id(individual_id))

    # ------------------------------------------------------------------ writes

    def enrol(
        self,
        photo: Photo,
        individual_id: str,
        *,
        species: str | None = None,
        source_name: str = "",
        move: bool = False,
        new_individual: bool = False,
        prepared: list[Feature] | None = None,
    ) -> EnrolResult:
        """Add a photo of a known individual; searchable as soon as this returns.

        A photo already stored (same content) is not stored again; it only gets the
        features it lacks (enrolled under other extractor settings or before the deep
        model was installed).

        Args:
            photo: the decoded photo.
            individual_id: the catalogue id of the individual it shows.
            species: recorded on the individual if it has none yet.
            source_name: the file name, shown as evidence in answers; the start of the
                content hash when not given.
            move: a photo already stored under another individual moves to this one.
            new_individual: `individual_id` must not exist yet (a reviewer's "no match").
            prepared: its features, already extracted (see `enrol_all`).

        Raises:
            PhotoElsewhere: the photo is stored under another individual and `move` is
                not set; nothing changes.
            Conflict: `new_individual` is set and the individual exists.
            ImageError: "low_confidence", the photo holds too little texture to be
                matched (and no deep model would find it either).
        """
        return self._store(
            PhotoRecord.of(photo),
            individual_id,
            partial(self.describer.describe, photo) if prepared is None else _picked(prepared),
            species=species,
            source_name=source_name,
            move=move,
            new_individual=new_individual,
        )

    def enrol_described(
        self,
        photo: DescribedPhoto,
        individual_id: str,
        *,
        species: str | None = None,
        source_name: str = "",
    ) -> EnrolResult:
        """Enrol a photo described by another process (a cluster worker), as `enrol`.

        Raises:
            InvalidInput: its features come from other extractors or versions than this
                catalogue keeps (a worker with other settings or models), or its content
                does not match its sha256.
            PhotoElsewhere: as for `enrol`.
        """
        theirs = {name: version for name, version, _ in photo.features}
        if theirs != self.describer.versions:
            raise InvalidInput(
                f"described with {_named(theirs)}, but this catalogue keeps"
                f" {_named(self.describer.versions)}: give the workers the same settings"
                " and models"
            )
        return self._store(
            photo.record,
            individual_id,
            _picked(photo.features),
            species=species,
            source_name=source_name,
        )

    def _store(
        self,
        record: PhotoRecord,
        individual_id: str,
        features: Callable[[set[str]], list[Feature]],
        *,
        species: str | None,
        source_name: str,
        move: bool = False,
        new_individual: bool = False,
    ) -> EnrolResult:
        """`enrol` once the photo's features can be had: features(wanted) gives those
        of the extractors named, and is called only for what is not stored yet."""
        if record.content and hashlib.sha256(record.content).hexdigest() != record.sha256:
            raise InvalidInput("photo: content does not match its sha256")
        individual_id = canonical_id(individual_id)
        existing = self.store.image_by_sha256(record.sha256)
        if existing is not None and existing.individual_id != individual_id and not move:
            raise PhotoElsewhere(existing.id, existing.individual_id, individual_id)
        if new_individual and self.store.individual(individual_id) is not None:
            raise Conflict(f"individual {individual_id!r} already exists")
        if existing is not None:
            return self._complete(existing, record, individual_id, species, features)
        extracted = features(set(self.describer.versions))
        new = NewImage(
            sha256=record.sha256,
            source_name=source_name or record.sha256[:16],
            individual_id=individual_id,
            width=record.width,
            height=record.height,
            taken_at=record.taken_at,
            latitude=record.latitude,
            longitude=record.longitude,
            file_bytes=len(record.content) or None,
            format=record.format,
        )
        try:
            with self.photos.adding():
                if record.content:
                    self.photos.put(record.content)  # durable before the row commits
                image_id, created = self.store.add_image(new, species, extracted)
        except BaseException:
            if record.content:
                self._remove_files([record.sha256])  # unless a row holds it
            raise
        self._changed()
        if not created:  # stored by another writer between the two calls
            stored = self.store.image(image_id)
            individual_id = stored.individual_id if stored else individual_id
        return EnrolResult(image_id=image_id, individual_id=individual_id, created=created)

    def enrol_all(
        self, photos: Sequence[tuple[str, Photo]], individual_id: str
    ) -> list[EnrolResult]:
        """Enrol several (file name, photo) of one individual, all or none: every photo is
        checked and its features extracted before any is stored."""
        individual_id = canonical_id(individual_id)
        prepared = []
        for _, photo in photos:
            existing = self.store.image_by_sha256(photo.sha256)
            if existing is not None and existing.individual_id != individual_id:
                raise PhotoElsewhere(existing.id, existing.individual_id, individual_id)
            prepared.append(None if existing else self.describer.describe(photo))
        return [
            self.enrol(photo, individual_id, source_name=name, prepared=features)
            for (name, photo), features in zip(photos, prepared, strict=True)
        ]

    def holds(self, sha256: str, individual_id: str) -> bool:
        """Whether the photo with this content is stored under this individual with
        every feature: enrolling it again would change nothing."""
        row = self.store.image_by_sha256(sha256)
        return (
            row is not None
            and row.individual_id == canonical_id(individual_id)
            and not self.missing(row.id)
        )

    def missing(self, image_id: int) -> set[str]:
        """Names of the extractors whose features a stored photo lacks."""
        return {
            name
            for name, version in self.describer.versions.items()
            if self.store.feature(image_id, name, version) is None
        }

    def _complete(
        self,
        existing: ImageRow,
        record: PhotoRecord,
        individual_id: str,
        species: str | None,
        features: Callable[[set[str]], list[Feature]],
    ) -> EnrolResult:
        """A photo enrolled again: keep its file if it had none, give it the features it
        lacks, and move it if it was asked to."""
        if record.content and (existing.file_bytes is None or not self.photos.has(record.sha256)):
            # Enrolled before photos were kept: keep it now.
            with self.photos.adding():
                self.photos.put(record.content)
                self.store.set_file(existing.id, len(record.content), record.format)
        wanted = self.missing(existing.id)
        if wanted:
            self.store.add_features(existing.id, features(wanted))
        if existing.individual_id != individual_id:
            self.store.move_image(existing.id, individual_id, species)
        self._changed()
        return EnrolResult(image_id=existing.id, individual_id=individual_id, created=False)

    def create_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Add an individual with no photos yet.

        Raises:
            Conflict: the id is taken.
        """
        individual_id = canonical_id(individual_id)
        if self.store.individual(individual_id) is not None:
            raise Conflict(f"individual {individual_id!r} already exists")
        return self.store.upsert_individual(individual_id, species, name)

    def update_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Set the species and/or name given (None leaves a field as it is).

        Raises:
            NotFound: no such individual.
        """
        individual_id = canonical_id(individual_id)
        if self.store.individual(individual_id) is None:
            raise NotFound(f"individual {individual_id!r} not found")
        return self.store.upsert_individual(individual_id, species, name)

    def rename_individual(self, old_id: str, new_id: str) -> None:
        """Give an individual a new id; its photos follow, searchable under the new id.

        Raises:
            NotFound: `old_id` does not exist.
            Conflict: `new_id` is taken.
        """
        old_id = canonical_id(old_id)
        new_id = canonical_id(new_id)
        self.store.rename_individual(old_id, new_id)
        self._changed()

    def merge_individuals(self, source_id: str, target_id: str) -> int:
        """Move every photo of `source_id` to `target_id` and delete `source_id`.

        Returns:
            How many photos moved.

        Raises:
            NotFound: either individual does not exist.
            Conflict: source and target are the same.
        """
        source_id = canonical_id(source_id)
        target_id = canonical_id(target_id)
        moved = self.store.merge_individuals(source_id, target_id)
        self._changed()
        return moved

    def delete_image(self, image_id: int) -> bool:
        """Delete a photo and its features; it is no longer found by searches.

        Returns:
            True if the photo existed.
        """
        row = self.store.image(image_id)
        if row is None or not self.store.delete_image(image_id):
            return False
        self._changed()
        self._remove_files([row.sha256])
        return True

    def delete_individual(self, individual_id: str) -> int:
        """Delete an individual with all its photos.

        Returns:
            How many photos were deleted.

        Raises:
            NotFound: no such individual.
        """
        individual_id = canonical_id(individual_id)
        shas = [row.sha256 for row in self.store.images_of(individual_id)]
        deleted = self.store.delete_individual(individual_id)
        self._changed()
        self._remove_files(shas)
        return deleted

    def import_centroids(self, rows: Sequence[CentroidRow]) -> int:
        """Make `rows` the deep model's centroids, searchable beside enrolled photos.

        Returns:
            How many were stored.

        Raises:
            StoreError: no deep model is loaded (centroids are only comparable with the
                embeddings of the model they come from), or invalid rows.
        """
        embedder = self.describer.embedder
        if embedder is None:
            raise StoreError("no deep embedder is loaded: install its model folder first")
        stored = self.store.replace_centroids(embedder.name, embedder.version, rows)
        self._changed()
        return stored

    def reextract(
        self, progress: Progress | None = None, describe: DescribeFiles | None = None
    ) -> Reextraction:
        """Give every stored photo the features searched now, extracted from its stored
        file: after the extractor settings changed, or a deep model was installed.

        Args:
            progress: progress(done, total) over the photos lacking features.
            describe: describes the stored files elsewhere (a cluster's workers), given
                their paths, in order; by default each photo gets here only the features
                it lacks.

        Returns:
            How many photos were given features, and each that could not be (no stored
            file, or a file that does not decode), with the reason.
        """
        labels = self.store.image_labels()
        pending = [
            row
            for image_id in sorted(labels)
            if self.missing(image_id) and (row := self.store.image(image_id)) is not None
        ]
        stored: list[ImageRow] = []
        unextracted: list[Unextracted] = []
        for row in pending:
            if self.photos.has(row.sha256):
                stored.append(row)
            else:
                unextracted.append(_unextracted(row, "no_file"))
        if describe is None:
            errors = (self._reextracted_here(row) for row in stored)
        else:
            described = describe([self.photos.path(row.sha256) for row in stored])
            errors = (
                self._stored_described(row, photo)
                for row, photo in zip(stored, described, strict=True)
            )
        extracted = 0
        for done, (row, error) in enumerate(
            zip(stored, errors, strict=True), start=len(unextracted) + 1
        ):
            if error is None:
                extracted += 1
            else:
                unextracted.append(_unextracted(row, error))
            if progress is not None:
                progress(done, len(pending))
        return Reextraction(
            extracted=extracted, current=len(labels) - len(pending), unextracted=unextracted
        )

    def _reextracted_here(self, row: ImageRow) -> str | None:
        """Add what a stored photo lacks, as enrolling it again does; why not, if not."""
        try:
            photo = load_photo_file(self.photos.path(row.sha256), max_pixels=REEXTRACT_MAX_PIXELS)
            self.enrol(photo, row.individual_id, source_name=row.source_name)
        except ImageError as exc:
            return f"{exc.reason}: {exc.message}"
        return None

    def _stored_described(self, row: ImageRow, photo: DescribedPhoto | ImageError) -> str | None:
        """Add what a stored photo lacks from its description; why not, if not."""
        try:
            if isinstance(photo, ImageError):
                raise photo
            self.enrol_described(photo, row.individual_id, source_name=row.source_name)
        except ImageError as exc:
            return f"{exc.reason}: {exc.message}"
        except InvalidInput as exc:  # described with other settings or models
            return str(exc)
        return None

    def _remove_files(self, shas: Sequence[str]) -> None:
        """Remove the photo files of rows already deleted (never of a row that exists:
        another process may have enrolled the same photo meanwhile)."""
        with self.photos.removing():
            for sha in shas:
                if self.store.image_by_sha256(sha) is None:
                    self.photos.delete(sha)


def canonical_id(individual_id: str) -> str:
    """One spelling of an id however it was typed: spaces around it dropped, Unicode NFC
    (a macOS keyboard sends NFD)."""
    # Not a str: the store's checks say what is wrong with it.
    if not isinstance(individual_id, str):
        return individual_id
    return unicodedata.normalize("NFC", individual_id.strip())


def _picked(features: list[Feature]) -> Callable[[set[str]], list[Feature]]:
    """features(wanted) from features already extracted: those of the extractors named."""
    return lambda wanted: [feature for feature in features if feature[0] in wanted]


def _named(versions: dict[str, str]) -> str:
    return ", ".join(f"{name}-{version}" for name, version in sorted(versions.items()))


def _unextracted(row: ImageRow, reason: str) -> Unextracted:
    return Unextracted(
        image_id=row.id, individual_id=row.individual_id, source_name=row.source_name, reason=reason
    )
