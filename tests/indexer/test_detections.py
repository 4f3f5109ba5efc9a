"""Whole frames with several animals: the locate stage, one identification per animal's
box, and enrolment described in the animals' region. A locator that returns boxes the
test chose stands in for the network, so every answer can be checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from embeddings.gate import GateCheck
from embeddings.images import load_photo
from embeddings.photo import Box, Photo, union
from embeddings.protocol import GlobalEmbedding
from indexer.gallery import Gallery
from indexer.results import FUSED, WEIGHT_FREE
from indexer.store import Store
from tests.synthetic import encode, sighting

LEFT = Box(0, 40, 480, 360)
RIGHT = Box(1000, 100, 1480, 420)


class FixedLocator:
    """Finds the animals where the frame was composed to have them."""

    name = "fixed"
    version = "1"

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes

    def locate(self, photo: Photo) -> list[Box]:
        return self.boxes if photo.width > 600 else [Box.whole(photo)]

    def region(self, photo: Photo) -> Box | None:
        return union(self.boxes) if photo.width > 600 else None


def frame(left: str, right: str, seed: int = 7) -> Photo:
    """A 1500 x 480 survey frame: sea texture with `left` and `right` where the boxes say."""
    rng = np.random.default_rng(seed)
    pixels = rng.normal(90, 3, (480, 1500, 3)).clip(0, 255).astype(np.uint8)
    for box, individual in ((LEFT, left), (RIGHT, right)):
        size = (box.x1 - box.x0, box.y1 - box.y0)
        pixels[box.y0 : box.y1, box.x0 : box.x1] = cv2.resize(sighting(individual, seed), size)
    return load_photo(encode(pixels, "PNG"))


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    with Gallery.open(tmp_path / "data", locator=FixedLocator([LEFT, RIGHT])) as opened:
        for individual in ("anna", "bert", "carl", "dora"):
            for seed in (0, 1, 2):
                opened.catalogue.enrol(load_photo(encode(sighting(individual, seed))), individual)
        yield opened


def test_each_animal_is_identified_on_its_own_box(gallery: Gallery) -> None:
    answer = gallery.pipeline.identify_photo(frame("anna", "bert"))

    assert answer.stages == ["decode", "locate", "local search", "decision"]
    assert [d.bbox for d in answer.detections] == [LEFT.as_list(), RIGHT.as_list()]
    assert [d.candidates[0].individual_id for d in answer.detections] == ["anna", "bert"]
    assert all(d.decision == "match" for d in answer.detections)
    # The matched points are in the whole photo's pixels, inside their animal's box.
    for detection in answer.detections:
        x0, y0, x1, y1 = detection.bbox
        pairs = detection.candidates[0].evidence.pairs
        assert pairs and all(x0 <= qx <= x1 and y0 <= qy <= y1 for qx, qy, _, _ in pairs)
    # The top level is the detection the catalogue is surest of.
    best = max(answer.detections, key=lambda d: d.candidates[0].probability)
    assert answer.bbox == best.bbox and answer.candidates == best.candidates


def test_the_cap_on_detections_keeps_the_hottest(tmp_path: Path) -> None:
    from indexer.config import EngineConfig

    locator = FixedLocator([LEFT, RIGHT])
    with Gallery.open(
        tmp_path / "data", locator=locator, engine=EngineConfig(max_detections=1)
    ) as opened:
        opened.catalogue.enrol(load_photo(encode(sighting("anna", 0))), "anna")
        answer = opened.pipeline.identify_photo(frame("anna", "bert"))

    assert [d.bbox for d in answer.detections] == [LEFT.as_list()]


def test_without_a_locator_the_photo_is_one_detection_of_the_whole(tmp_path: Path) -> None:
    with Gallery.open(tmp_path / "data") as opened:
        opened.catalogue.enrol(load_photo(encode(sighting("anna", 0))), "anna")
        query = frame("anna", "bert")
        answer = opened.pipeline.identify_photo(query)

    assert "locate" not in answer.stages
    assert len(answer.detections) == 1
    assert answer.bbox == answer.detections[0].bbox == [0, 0, query.width, query.height]


def test_an_enrolled_frame_is_described_in_its_animals_region(gallery: Gallery) -> None:
    enrolled = gallery.catalogue.enrol(frame("erik", "erik", seed=3), "erik")

    store: Store = gallery.store
    row = store.feature(enrolled.image_id, gallery.extractor.name, gallery.extractor.version)
    assert row is not None
    region = union([LEFT, RIGHT])
    x, y = row.features.keypoints[:, 0], row.features.keypoints[:, 1]
    assert len(x) > 0
    assert (x >= region.x0).all() and (x <= region.x1).all()
    assert (y >= region.y0).all() and (y <= region.y1).all()


class DoubtingGate:
    """A gate that finds no cetacean in anything."""

    name = "doubting"
    version = "1"
    threshold = 1.0
    calibration = "test"

    def check(self, photo: Photo) -> GateCheck:
        return GateCheck(score=0.2, threshold=1.0, passed=False)


def test_a_match_to_a_known_individual_overrules_a_doubting_gate(tmp_path: Path) -> None:
    with Gallery.open(tmp_path / "data", gate=DoubtingGate()) as opened:
        for individual in [f"ind-{i}" for i in range(10)]:
            for seed in (0, 1, 2):
                opened.catalogue.enrol(load_photo(encode(sighting(individual, seed))), individual)
        opened.calibrator.refit_if_due()
        known = opened.pipeline.identify_photo(load_photo(encode(sighting("ind-3", 7))))
        stranger = opened.pipeline.identify_photo(load_photo(encode(sighting("nobody", 7))))

    assert known.calibrated and known.decision == "match"
    assert known.candidates[0].individual_id == "ind-3"
    assert known.gate.score == 0.2 and "overruled by a match" in known.gate.detail
    assert stranger.decision == "rejected"
    assert stranger.rejection_reason == "not_a_marine_mammal"
    assert stranger.stages[-1] == "decision"  # searched, then rejected


class FramesOnlyEmbedder:
    """A scene embedding (as Lite0's is) that leaves crops of up to 600 px alone: one
    direction per photo width, and a count of the photos it was asked for."""

    name = "scene"
    version = "1"
    dim = 4
    crop_side = 600

    def __init__(self) -> None:
        self.widths: list[int] = []

    def extract(self, photo: Photo) -> GlobalEmbedding:
        self.widths.append(photo.width)
        vector = np.zeros(self.dim, np.float32)
        vector[photo.width % self.dim] = 1.0
        return GlobalEmbedding(vector=vector)


def test_a_frames_only_embedding_is_searched_for_frames_not_for_crops(tmp_path: Path) -> None:
    embedder = FramesOnlyEmbedder()
    with Gallery.open(
        tmp_path / "data", locator=FixedLocator([LEFT, RIGHT]), embedder=embedder
    ) as opened:
        for individual in ("anna", "bert"):
            for seed in (0, 1, 2):
                opened.catalogue.enrol(load_photo(encode(sighting(individual, seed))), individual)
        embedder.widths.clear()
        crop = opened.pipeline.identify_photo(load_photo(encode(sighting("anna", 7))))
        assert embedder.widths == []
        whole_frame = opened.pipeline.identify_photo(frame("anna", "bert"))
        assert embedder.widths == [1500]
        assert "for crops no larger" in opened.pipeline.identification

    assert "deep search" not in crop.stages and "deep search" not in crop.timings_ms
    assert crop.identification == WEIGHT_FREE
    assert crop.candidates[0].similarity is None
    assert whole_frame.stages == ["decode", "locate", "deep search", "local search", "decision"]
    assert whole_frame.identification == FUSED
