"""The identification engine: a gallery of photos of known individuals, searchable.

    with Gallery.open(data_dir) as gallery:
        gallery.enrol(photo, "w_1234", species="humpback_whale")
        answer = gallery.identify(query_photo)

SQLite (`indexer.store`) holds every photo's label and features, and the photo files
themselves are kept under `<data_dir>/photos/` (`indexer.photo_files`); the FAISS
descriptor index and the score calibration are derived files under `<data_dir>/index/`,
rebuilt from the database whenever they are missing, stale or made by other extractor
settings. Enrolment writes the photo file first, then SQLite (both durable when `enrol`
returns), then adds to the index in memory, so a crash never leaves a row without its
file; a file whose row never committed is swept when the gallery opens. Deletions remove
files after the row. The index file is rewritten by `save()`/`close()`, and a restart
after a crash adds whatever the file lacks from the database.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import faiss
import msgspec
import numpy as np

from embeddings.images import load_photo
from embeddings.keypoints import KeypointConfig, RootSiftExtractor
from embeddings.photo import ImageError, Photo
from embeddings.protocol import GlobalEmbedding, GlobalExtractor, LocalFeatures
from indexer.calibration import Calibration, calibration_queries, fit_isotonic
from indexer.centroids import CentroidRow
from indexer.config import EngineConfig
from indexer.deep_search import DeepHit, DeepSearch
from indexer.descriptor_index import DescriptorIndex
from indexer.files import replacing
from indexer.photo_files import PHOTOS_DIR, PhotoFiles
from indexer.results import (
    Candidate,
    EnrolResult,
    Evidence,
    GalleryStats,
    Identification,
    Reextraction,
    Unextracted,
)
from indexer.scoring import image_scores, lnbnn_votes, one_per_keypoint, verify
from indexer.store import (
    DATABASE_FILE,
    Conflict,
    ImageRow,
    Individual,
    InvalidInput,
    NewImage,
    NotFound,
    Store,
    StoreError,
)

__all__ = ["Gallery", "Progress", "RankedImage"]

Progress = Callable[[int, int], None]
"""progress(done, total), called as long work advances."""

_INDEX_DIR = "index"
# Extra neighbours fetched when photos are excluded from a search (leave-one-out), so
# that K+1 remain after dropping the excluded photo's own descriptors.
_EXCLUDE_SLACK = 4
# RANSAC tolerance as a fraction of the gallery photo's keypoint spread: the same
# tolerance for a 300 px crop and a 3600 px frame.
_RANSAC_TOLERANCE = 0.03
# Until a calibration is fitted, probability 0.5 at this much verified match weight (a
# conservative guess from the development sets, where true matches mostly verify above
# 1000).
_UNFITTED_HALF_VERIFIED = 300.0
# Stored photos were accepted when enrolled; re-extraction decodes them under a generous
# limit rather than the upload limit of the day.
_REEXTRACT_MAX_PIXELS = 200_000_000


class IndexState(msgspec.Struct, frozen=True, kw_only=True):
    """What the saved index files were built from; a mismatch means rebuild."""

    extractor: str
    version: str
    epoch: int
    max_feature_id: int
    calibration: Calibration


class RankedImage(msgspec.Struct, frozen=True, kw_only=True):
    """One gallery photo's scores for one query."""

    image_id: int
    score: float
    """`lnbnn + inlier_weight * verified`: what photos and individuals are ranked by."""
    lnbnn: float
    verified: float
    inliers: int


class _Entry(msgspec.Struct, frozen=True):
    individual_id: str
    source_name: str
    points: np.ndarray  # (N, 2) float32 keypoint positions
    tolerance: float


class Gallery:
    """Enrol and identify photos; see the module docstring for the storage model."""

    def __init__(
        self,
        store: Store,
        index_dir: Path,
        extractor: RootSiftExtractor,
        engine: EngineConfig,
        embedder: GlobalExtractor | None = None,
        photos: PhotoFiles | None = None,
    ) -> None:
        self.store = store
        self.photos = photos or PhotoFiles(index_dir.parent / PHOTOS_DIR)
        self.extractor = extractor
        self.engine = engine
        self.embedder = embedder
        self._deep = (
            None
            if embedder is None
            else DeepSearch(store, embedder.name, embedder.version, embedder.dim, engine)
        )
        self._index_dir = index_dir
        self._lock = threading.RLock()
        self._index = DescriptorIndex(128, engine.exact_search_max, engine.nprobe)
        self._entries: dict[int, _Entry] = {}
        self._calibration = Calibration.unfitted(engine.inlier_weight * _UNFITTED_HALF_VERIFIED)
        self._epoch = 0
        self._max_feature_id = 0
        self._dirty = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        features: KeypointConfig | None = None,
        engine: EngineConfig | None = None,
        embedder: GlobalExtractor | None = None,
        progress: Progress | None = None,
    ) -> Gallery:
        """Open (creating if needed) the gallery stored in `data_dir`.

        A missing or stale index is rebuilt from the database before this returns.
        With an `embedder` (a deep model), photos are also searched by their embeddings,
        beside any imported centroids of that model, and the two kinds of evidence fused.
        """
        data_dir = Path(data_dir)
        engine = engine or EngineConfig()
        faiss.omp_set_num_threads(engine.search_threads)
        store = Store.open(data_dir / DATABASE_FILE)
        try:
            gallery = cls(
                store,
                data_dir / _INDEX_DIR,
                RootSiftExtractor(features),
                engine,
                embedder,
                PhotoFiles(data_dir / PHOTOS_DIR),
            )
            # Files whose row never committed (a crash between the two writes).
            with gallery.photos.removing():
                gallery.photos.sweep(store.image_shas())
            gallery._load(progress)
        except BaseException:
            store.close()
            raise
        return gallery

    def close(self) -> None:
        """Save the index if it changed and close the database."""
        with self._lock:
            self.save()
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def save(self) -> None:
        """Write the index and its state file atomically, if anything changed."""
        with self._lock:
            if not self._dirty:
                return
            self._index_dir.mkdir(parents=True, exist_ok=True)
            self._index.save(self._index_path)
            state = IndexState(
                extractor=self.extractor.name,
                version=self.extractor.version,
                epoch=self._epoch,
                max_feature_id=self._max_feature_id,
                calibration=self._calibration,
            )
            with replacing(self._state_path) as tmp:
                tmp.write_bytes(msgspec.json.encode(state))
            self._dirty = False

    @property
    def index_version(self) -> str:
        """Identifies the searchable state: extractor version, epoch and last feature,
        and the deep model's version when one is loaded."""
        version = (
            f"{self.extractor.name}-{self.extractor.version}/e{self._epoch}/f{self._max_feature_id}"
        )
        if self._deep is not None:
            version += f"+{self._deep.model}-{self._deep.version}"
        return version

    @property
    def deep_calibration(self) -> Calibration | None:
        return None if self._deep is None else self._deep.calibration

    @property
    def calibration(self) -> Calibration:
        return self._calibration

    def stats(self) -> GalleryStats:
        with self._lock:
            return GalleryStats(
                individuals=len({e.individual_id for e in self._entries.values()}),
                images=len(self._entries),
                descriptors=self._index.size,
                stored_images=self.store.count_images(),
                embeddings=0 if self._deep is None else self._deep.photos,
                centroids=0 if self._deep is None else self._deep.centroids,
            )

    # ------------------------------------------------------------------ writes

    def enrol(
        self,
        photo: Photo,
        individual_id: str,
        *,
        species: str | None = None,
        source_name: str = "",
        features: LocalFeatures | None = None,
    ) -> EnrolResult:
        """Add a photo of a known individual; searchable as soon as this returns.

        Args:
            photo: the decoded photo.
            individual_id: the catalogue id of the individual it shows.
            species: recorded on the individual if it has none yet.
            source_name: the file name, shown as evidence in answers; the start of the
                content hash when not given.
            features: already extracted features of this photo (saves extracting twice).
        """
        if photo.content and hashlib.sha256(photo.content).hexdigest() != photo.sha256:
            raise InvalidInput("photo: content does not match its sha256")
        existing = self.store.image_by_sha256(photo.sha256)
        if (
            existing is not None
            and photo.content
            and (existing.file_bytes is None or not self.photos.has(photo.sha256))
        ):
            # Enrolled before photos were kept: keep it now.
            with self.photos.adding():
                self.photos.put(photo.content)
                self.store.set_file(existing.id, len(photo.content), photo.format)
        if existing is not None and self._complete(existing.id):
            return EnrolResult(
                image_id=existing.id, individual_id=existing.individual_id, created=False
            )
        if features is None:
            features = self.extractor.extract(photo)
        embedding = None if self.embedder is None else self.embedder.extract(photo)
        if existing is not None:
            # Stored under older extractor settings or before the deep model was
            # installed: give it what it lacks.
            with self._lock:
                if self.store.add_features(
                    existing.id, [(self.extractor.name, self.extractor.version, features)]
                ):
                    self._index_new(
                        existing.id, existing.individual_id, existing.source_name, features
                    )
                if embedding is not None:
                    self._embed_new(existing.id, existing.individual_id, embedding)
            return EnrolResult(
                image_id=existing.id, individual_id=existing.individual_id, created=False
            )
        source_name = source_name or photo.sha256[:16]
        record = NewImage(
            sha256=photo.sha256,
            source_name=source_name,
            individual_id=individual_id,
            width=photo.width,
            height=photo.height,
            taken_at=photo.taken_at,
            latitude=photo.latitude,
            longitude=photo.longitude,
            file_bytes=len(photo.content) or None,
            format=photo.format,
        )
        extracted: list[tuple[str, str, LocalFeatures | GlobalEmbedding]] = [
            (self.extractor.name, self.extractor.version, features)
        ]
        if embedding is not None and self.embedder is not None:
            extracted.append((self.embedder.name, self.embedder.version, embedding))
        try:
            with self.photos.adding():
                if photo.content:
                    self.photos.put(photo.content)  # durable before the row commits
                with self._lock:
                    image_id, created = self.store.add_image(record, species, extracted)
        except BaseException:
            if photo.content:
                self._remove_files([photo.sha256])  # unless a row holds it
            raise
        with self._lock:
            if created:
                self._index_new(image_id, individual_id, source_name, features)
                if embedding is not None and self._deep is not None:
                    self._deep.add(image_id, individual_id, embedding.vector)
        if not created:
            stored = self.store.image(image_id)
            individual_id = stored.individual_id if stored else individual_id
        return EnrolResult(image_id=image_id, individual_id=individual_id, created=created)

    def _index_new(
        self, image_id: int, individual_id: str, source_name: str, features: LocalFeatures
    ) -> None:
        """Make just-stored features searchable (caller holds the lock)."""
        self._add_entry(image_id, individual_id, source_name, features)
        self._index.add(image_id, features.descriptors)
        self._max_feature_id = self.store.max_feature_id(
            self.extractor.name, self.extractor.version
        )
        self._dirty = True
        if not self._index.approximate and self._index.size > self.engine.exact_search_max:
            self._build_index(None)

    def _complete(self, image_id: int) -> bool:
        """Whether a stored photo has every kind of features the gallery searches."""
        if image_id not in self._entries:
            return False
        return self._deep is None or self._deep.holds(image_id)

    def _embed_new(self, image_id: int, individual_id: str, embedding: GlobalEmbedding) -> None:
        """Store and index a deep embedding of an already stored photo (caller holds the
        lock)."""
        if self.embedder is None or self._deep is None:
            return
        if self.store.add_features(
            image_id, [(self.embedder.name, self.embedder.version, embedding)]
        ):
            self._deep.add(image_id, individual_id, embedding.vector)

    def reextract(
        self, progress: Progress | None = None, *, max_pixels: int = _REEXTRACT_MAX_PIXELS
    ) -> Reextraction:
        """Give every stored photo the features this gallery searches, extracted from
        its stored file: after the extractor settings changed, or a deep model was
        installed. They are searchable as each is stored; `rebuild` afterwards refits
        the calibration.

        Args:
            progress: progress(done, total) over the photos lacking features.
            max_pixels: largest photo decoded, as for `load_photo`.

        Returns:
            How many photos were given features, and each that could not be (no stored
            file, or a file that does not decode), with the reason.
        """
        labels = self.store.image_labels()
        with self._lock:
            pending = sorted(i for i in labels if not self._complete(i))
        extracted = 0
        unextracted: list[Unextracted] = []
        for done, image_id in enumerate(pending, start=1):
            row = self.store.image(image_id)
            if row is not None:
                try:
                    photo = load_photo(self.photos.read(row.sha256), max_pixels=max_pixels)
                    # Adds what the stored photo lacks, as a repeated enrolment does.
                    self.enrol(photo, row.individual_id, source_name=row.source_name)
                    extracted += 1
                except FileNotFoundError:
                    unextracted.append(_unextracted(row, "no_file"))
                except ImageError as exc:
                    unextracted.append(_unextracted(row, f"{exc.reason}: {exc.message}"))
            if progress is not None:
                progress(done, len(pending))
        return Reextraction(
            extracted=extracted, current=len(labels) - len(pending), unextracted=unextracted
        )

    def rebuild(self, progress: Progress | None = None) -> None:
        """Rebuild the indexes from the database and refit the calibrations."""
        with self._lock:
            self._build_index(progress)
            self._calibration = self._fit_calibration()
            self._dirty = True
            self.save()
            if self._deep is not None:
                self._deep.build()

    # ------------------------------------------------------------------ catalogue

    def create_individual(
        self, individual_id: str, *, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Add an individual with no photos yet.

        Raises:
            Conflict: the id is taken.
        """
        with self._lock:
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
        with self._lock:
            if self.store.individual(individual_id) is None:
                raise NotFound(f"individual {individual_id!r} not found")
            return self.store.upsert_individual(individual_id, species, name)

    def rename_individual(self, old_id: str, new_id: str) -> None:
        """Give an individual a new id; its photos follow, searchable under the new id.

        Raises:
            NotFound: `old_id` does not exist.
            Conflict: `new_id` is taken.
        """
        with self._lock:
            self.store.rename_individual(old_id, new_id)
            self._relabel(old_id, new_id)

    def merge_individuals(self, source_id: str, target_id: str) -> int:
        """Move every photo of `source_id` to `target_id` and delete `source_id`.

        Returns:
            How many photos moved.

        Raises:
            NotFound: either individual does not exist.
            Conflict: source and target are the same.
        """
        with self._lock:
            moved = self.store.merge_individuals(source_id, target_id)
            self._relabel(source_id, target_id)
            return moved

    def delete_image(self, image_id: int) -> bool:
        """Delete a photo and its features; it is no longer found by searches.

        Returns:
            True if the photo existed.
        """
        with self._lock:
            row = self.store.image(image_id)
            if row is None or not self.store.delete_image(image_id):
                return False
            self._forget([image_id])
        self._remove_files([row.sha256])
        return True

    def delete_individual(self, individual_id: str) -> int:
        """Delete an individual with all its photos.

        Returns:
            How many photos were deleted.

        Raises:
            NotFound: no such individual.
        """
        with self._lock:
            image_ids = [i for i, e in self._entries.items() if e.individual_id == individual_id]
            shas = [row.sha256 for row in self.store.images_of(individual_id)]
            deleted = self.store.delete_individual(individual_id)
            if self._deep is not None:
                self._deep.forget_individual(individual_id)
            self._forget(image_ids)
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
        if self.embedder is None or self._deep is None:
            raise StoreError("no deep embedder is loaded: install its model folder first")
        with self._lock:
            stored = self.store.replace_centroids(self.embedder.name, self.embedder.version, rows)
            self._deep.build()
            self._follow_epoch()
            return stored

    def _remove_files(self, shas: Sequence[str]) -> None:
        """Remove the photo files of rows already deleted (never of a row that exists:
        another process may have enrolled the same photo meanwhile). Takes the file
        store's lock, so the caller must not hold the gallery's."""
        with self.photos.removing():
            for sha in shas:
                if self.store.image_by_sha256(sha) is None:
                    self.photos.delete(sha)

    def _relabel(self, old_id: str, new_id: str) -> None:
        """Mirror a relabelling already committed to the database (caller holds the lock)."""
        for image_id, entry in list(self._entries.items()):
            if entry.individual_id == old_id:
                self._entries[image_id] = msgspec.structs.replace(entry, individual_id=new_id)
        if self._deep is not None:
            self._deep.relabel(old_id, new_id)
        self._follow_epoch()

    def _forget(self, image_ids: list[int]) -> None:
        """Mirror deletions already committed to the database (caller holds the lock)."""
        for image_id in image_ids:
            if self._entries.pop(image_id, None) is not None:
                self._index.remove(image_id)
        if self._deep is not None:
            self._deep.forget(image_ids)
        self._follow_epoch()

    def _follow_epoch(self) -> None:
        # The index now matches the database again, so the saved state may claim the new
        # epoch; until it is saved, a crash leaves an older epoch on disk: a rebuild.
        self._epoch = self.store.epoch()
        self._dirty = True

    # ------------------------------------------------------------------ reads

    def identify(self, photo: Photo, *, top_k: int | None = None) -> Identification:
        """Rank the gallery's individuals for a photo and decide match or new individual.

        With a deep model, the individuals nearest by embedding (photos or centroids)
        form a shortlist whose best photos local-feature verification checks too, and
        each candidate's probability fuses both kinds of evidence (see `answer`).
        """
        started = time.perf_counter()
        detection = self.extractor.detect(photo)
        features = detection.describe()
        timings = {"features": 1000 * (time.perf_counter() - started)}
        deep_hits: dict[str, DeepHit] | None = None
        if self.embedder is not None and self._deep is not None:
            embedding_started = time.perf_counter()
            vector = self.embedder.extract(photo).vector
            timings["embedding"] = 1000 * (time.perf_counter() - embedding_started)
            with self._lock:
                deep_hits = self._deep.search(vector, self.engine.deep_neighbours)
        search_started = time.perf_counter()
        enough = len(features.descriptors) >= self.engine.min_query_features
        shortlisted = list(deep_hits.values())[: self.engine.shortlist] if deep_hits else []
        verify_also = [hit.image_id for hit in shortlisted if hit.image_id is not None]
        ranked = (
            self.rank(
                features,
                rolled=lambda angles: [detection.describe(angle) for angle in angles],
                verify_also=verify_also,
            )
            if enough
            else []
        )
        answer = self.answer(ranked, top_k=top_k, deep_hits=deep_hits)
        timings["search"] = 1000 * (time.perf_counter() - search_started)
        # Without a deep model, a photo too bare for local features has no evidence at
        # all; with one, its embedding still is evidence.
        if not enough and deep_hits is None:
            answer = msgspec.structs.replace(answer, decision="low_confidence")
        return msgspec.structs.replace(answer, timings_ms=timings)

    def rank(
        self,
        features: LocalFeatures,
        *,
        rolled: Callable[[Sequence[float]], Sequence[LocalFeatures]] | None = None,
        exclude: Iterable[int] = (),
        verify_also: Iterable[int] = (),
    ) -> list[RankedImage]:
        """Score gallery photos against query features, best first.

        Shortlisted photos (the best by LNBNN, and `verify_also`) are spatially verified,
        and every photo is ranked by `RankedImage.score`. When the best photo verifies
        fewer than `engine.roll_below_inliers` inliers and `rolled` is given, the query is
        searched again as described at each of `engine.roll_angles` (a rolled camera),
        and each photo keeps its best score over the hypotheses.

        Args:
            features: the query's local features.
            rolled: rolled(angles) -> the query's features described at those angles
                (`Detection.describe` of its keypoints); called only when needed.
            exclude: photo ids to leave out, as if not enrolled (leave-one-out).
            verify_also: photo ids to verify even if LNBNN does not shortlist them (the
                deep model's shortlist); only photos with votes can verify.
        """
        excluded = set(exclude)
        verify_also = list(verify_also)
        ranked = self._rank_once(features, excluded, verify_also)
        angles = self.engine.roll_angles
        if rolled is None or not angles or not self.extractor.config.upright:
            return ranked
        if ranked and ranked[0].inliers >= self.engine.roll_below_inliers:
            return ranked
        best = {item.image_id: item for item in ranked}
        for view in rolled(angles):
            for item in self._rank_once(view, excluded, verify_also):
                if item.image_id not in best or item.score > best[item.image_id].score:
                    best[item.image_id] = item
        return sorted(best.values(), key=lambda r: r.score, reverse=True)

    def _rank_once(
        self, features: LocalFeatures, excluded: set[int], verify_also: list[int]
    ) -> list[RankedImage]:
        k = self.engine.neighbours
        with self._lock:
            if self._index.size == 0 or len(features.descriptors) == 0:
                return []
            wanted = k + 1 + (_EXCLUDE_SLACK if excluded else 0)
            distances, image_ids, keypoints = self._index.search(
                features.descriptors, min(wanted, self._index.size)
            )
            entries = self._entries
        if excluded:
            distances, image_ids, keypoints = _drop(
                distances, image_ids, keypoints, excluded, k + 1
            )
        if distances.shape[1] < k + 1:
            return []
        votes = lnbnn_votes(distances, image_ids, keypoints, k)
        scores = image_scores(votes)
        shortlist = sorted(scores, key=scores.__getitem__, reverse=True)[: self.engine.shortlist]
        shortlist += [i for i in verify_also if i in scores and i not in shortlist]
        query_points = features.keypoints[:, :2]
        verified: dict[int, tuple[float, int]] = {}
        for image_id in shortlist:
            entry = entries.get(image_id)
            if entry is None:
                continue
            rows = np.flatnonzero(votes.image_id == image_id)
            rows = rows[one_per_keypoint(votes.keypoint[rows], votes.weight[rows])]
            verified[image_id] = verify(
                query_points[votes.query_keypoint[rows]],
                entry.points[votes.keypoint[rows]],
                votes.weight[rows],
                entry.tolerance,
            )
        ranked = []
        for image_id, lnbnn in scores.items():
            if image_id not in entries:
                continue
            inlier_score, inliers = verified.get(image_id, (0.0, 0))
            ranked.append(
                RankedImage(
                    image_id=image_id,
                    score=lnbnn + self.engine.inlier_weight * inlier_score,
                    lnbnn=lnbnn,
                    verified=inlier_score,
                    inliers=inliers,
                )
            )
        ranked.sort(key=lambda r: r.score, reverse=True)
        return ranked

    def answer(
        self,
        ranked: list[RankedImage],
        *,
        top_k: int | None = None,
        deep_hits: dict[str, DeepHit] | None = None,
    ) -> Identification:
        """Group ranked photos into individuals (each scored by its best photo) and decide.

        With `deep_hits` (the deep search's best hit per individual), each individual's
        probability is the mean of its calibrated local-feature probability and its
        calibrated embedding probability (WildFusion, Cermak et al. 2024: calibrate each
        score, then average). An individual with no photo holding local features (a
        centroid) has only the embedding probability; one the deep search did not reach
        is given the probability of the lowest cosine it read, an upper bound.
        """
        top_k = top_k or self.engine.top_k
        with self._lock:
            entries = self._entries
            calibration = self._calibration
            deep_calibration = self.deep_calibration
            index_version = self.index_version
        best: dict[str, tuple[RankedImage, _Entry]] = {}
        for item in ranked:
            entry = entries.get(item.image_id)
            # A photo deleted since it was ranked is no longer evidence.
            if entry is not None and entry.individual_id not in best:
                best[entry.individual_id] = (item, entry)
        probabilities = {
            name: calibration.probability(item.score) for name, (item, _) in best.items()
        }
        if deep_hits is not None and deep_calibration is not None:
            probabilities = _fused(probabilities, deep_hits, deep_calibration, entries)
        order = sorted(probabilities, key=probabilities.__getitem__, reverse=True)[:top_k]
        candidates = [
            self._candidate(name, probabilities[name], best.get(name), (deep_hits or {}).get(name))
            for name in order
        ]
        matched = bool(candidates) and (
            candidates[0].probability >= self.engine.new_individual_threshold
        )
        fitted = calibration.fitted and (deep_calibration is None or deep_calibration.fitted)
        return Identification(
            candidates=candidates,
            decision="match" if matched else "new_individual",
            extractor=f"{self.extractor.name}-{self.extractor.version}",
            index_version=index_version,
            calibrated=fitted,
            timings_ms={},
            models=[]
            if self.embedder is None
            else [f"{self.embedder.name}-{self.embedder.version}"],
        )

    def _candidate(
        self,
        individual: str,
        probability: float,
        local: tuple[RankedImage, _Entry] | None,
        hit: DeepHit | None,
    ) -> Candidate:
        row = self.store.individual(individual)
        if local is not None:
            item, entry = local
            evidence = Evidence(
                image_id=item.image_id, source_name=entry.source_name, inliers=item.inliers
            )
        elif hit is not None and hit.image_id is not None:
            stored = self.store.image(hit.image_id)
            evidence = Evidence(
                image_id=hit.image_id,
                source_name=stored.source_name if stored else "",
                inliers=0,
            )
        else:
            model = self.embedder.name if self.embedder else "deep model"
            evidence = Evidence(image_id=None, source_name=f"{model} centroid", inliers=0)
        return Candidate(
            individual_id=individual,
            species=row.species if row else None,
            probability=probability,
            score=local[0].score if local else 0.0,
            similarity=None if hit is None else hit.cosine,
            evidence=evidence,
        )

    def features_of(self, image_id: int) -> LocalFeatures | None:
        """The stored features of an enrolled photo."""
        row = self.store.feature(image_id, self.extractor.name, self.extractor.version)
        if row is None or not isinstance(row.features, LocalFeatures):
            return None
        return row.features

    def individual_of(self, image_id: int) -> str | None:
        entry = self._entries.get(image_id)
        return entry.individual_id if entry else None

    # ------------------------------------------------------------------ internals

    @property
    def _index_path(self) -> Path:
        return self._index_dir / f"descriptors-{self.extractor.name}.faiss"

    @property
    def _state_path(self) -> Path:
        return self._index_dir / "state.json"

    def _add_entry(
        self, image_id: int, individual_id: str, source_name: str, features: LocalFeatures
    ) -> None:
        points = np.ascontiguousarray(features.keypoints[:, :2], dtype=np.float32)
        spread = float(np.hypot(*np.ptp(points, axis=0))) if len(points) else 1.0
        self._entries[image_id] = _Entry(
            individual_id, source_name, points, max(1.0, _RANSAC_TOLERANCE * spread)
        )

    def _load(self, progress: Progress | None) -> None:
        """Load the saved index if it is current, else rebuild; catch up on new rows."""
        state = _read_state(self._state_path)
        epoch = self.store.epoch()
        current = (
            state is not None
            and state.extractor == self.extractor.name
            and state.version == self.extractor.version
            and state.epoch == epoch
            and self._index_path.exists()
        )
        if not current or state is None:
            self.rebuild(progress)
            return
        try:
            self._index = DescriptorIndex.load(
                self._index_path,
                self.engine.exact_search_max,
                self.engine.nprobe,
            )
        except RuntimeError:
            # A damaged index file is only a cache: rebuild it from the database.
            self.rebuild(progress)
            return
        self._epoch = epoch
        self._calibration = state.calibration
        self._max_feature_id = state.max_feature_id
        labels, sources = self._labels_and_sources()
        for row in self.store.iter_features(self.extractor.name, self.extractor.version):
            if not isinstance(row.features, LocalFeatures) or row.image_id not in labels:
                continue
            self._add_entry(row.image_id, labels[row.image_id], sources[row.image_id], row.features)
            if row.id > state.max_feature_id:
                self._index.add(row.image_id, row.features.descriptors)
                self._max_feature_id = max(self._max_feature_id, row.id)
                self._dirty = True
        self.save()
        if self._deep is not None:
            self._deep.build()

    def _labels_and_sources(self) -> tuple[dict[int, str], dict[int, str]]:
        return self.store.image_labels(), self.store.image_sources()

    def _build_index(self, progress: Progress | None) -> None:
        labels, sources = self._labels_and_sources()
        total = self.store.count_features(self.extractor.name, self.extractor.version)
        image_ids: list[int] = []
        descriptors: list[np.ndarray] = []
        self._entries = {}
        max_id = 0
        for done, row in enumerate(
            self.store.iter_features(self.extractor.name, self.extractor.version), start=1
        ):
            if isinstance(row.features, LocalFeatures) and row.image_id in labels:
                self._add_entry(
                    row.image_id, labels[row.image_id], sources[row.image_id], row.features
                )
                image_ids.append(row.image_id)
                descriptors.append(row.features.descriptors)
            max_id = max(max_id, row.id)
            if progress is not None:
                progress(done, total)
        self._index = DescriptorIndex(128, self.engine.exact_search_max, self.engine.nprobe)
        self._index.build(image_ids, descriptors)
        self._epoch = self.store.epoch()
        self._max_feature_id = max_id
        self._dirty = True

    def _fit_calibration(self) -> Calibration:
        """Query a sample of labelled gallery photos against the rest (leave-one-out).

        The queries are the stored upright features (decoding every photo file again
        would be slow), so they are never searched under roll hypotheses.
        """
        labels = {image_id: entry.individual_id for image_id, entry in self._entries.items()}
        candidates = calibration_queries(labels, self.engine.calibration_queries)
        positives: list[float] = []
        negatives: list[float] = []
        for image_id in candidates:
            features = self.features_of(image_id)
            if features is None:
                continue
            truth = self._entries[image_id].individual_id
            true_score = 0.0
            wrong_score = 0.0
            for item in self.rank(features, exclude=[image_id]):
                individual = self._entries[item.image_id].individual_id
                if individual == truth:
                    true_score = max(true_score, item.score)
                else:
                    wrong_score = max(wrong_score, item.score)
            positives.append(true_score)
            negatives.append(wrong_score)
        return fit_isotonic(
            np.asarray(positives),
            np.asarray(negatives),
            self.engine.inlier_weight * _UNFITTED_HALF_VERIFIED,
        )


def _fused(
    local: dict[str, float],
    deep_hits: dict[str, DeepHit],
    deep_calibration: Calibration,
    entries: dict[int, _Entry],
) -> dict[str, float]:
    """Mean of the calibrated local and deep probabilities of every individual either
    search found (see `Gallery.answer`)."""
    with_photos = {entry.individual_id for entry in entries.values()}
    floor = min((hit.cosine for hit in deep_hits.values()), default=-1.0)
    fused = {}
    for name in list(local) + [n for n in deep_hits if n not in local]:
        hit = deep_hits.get(name)
        deep = deep_calibration.probability(hit.cosine if hit else floor)
        if name in local:
            fused[name] = (local[name] + deep) / 2
        elif name in with_photos:
            # Searched by local features and nothing matched: zero local evidence.
            fused[name] = (0.0 + deep) / 2
        else:
            fused[name] = deep
    return fused


def _drop(
    distances: np.ndarray,
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    excluded: set[int],
    keep: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove neighbours from excluded photos, keeping the first `keep` of each row."""
    drop = np.isin(image_ids, list(excluded))
    # A stable sort on the drop flag moves kept neighbours left in their original order.
    order = np.argsort(drop, axis=1, kind="stable")[:, :keep]
    rows = np.arange(len(distances))[:, None]
    distances = distances[rows, order]
    image_ids = image_ids[rows, order]
    keypoints = keypoints[rows, order]
    dropped = drop[rows, order]
    distances = np.where(dropped, np.inf, distances)
    image_ids = np.where(dropped, -1, image_ids)
    return distances, image_ids, keypoints


def _unextracted(row: ImageRow, reason: str) -> Unextracted:
    return Unextracted(
        image_id=row.id, individual_id=row.individual_id, source_name=row.source_name, reason=reason
    )


def _read_state(path: Path) -> IndexState | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=IndexState)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
