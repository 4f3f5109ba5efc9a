"""The synthetic photo generator the service and engine tests rely on.

If these fail, engine tests that fail beside them say nothing about the engine.
"""

from __future__ import annotations

from datetime import datetime

import cv2
import numpy as np
import pytest

from embeddings.images import load_photo
from embeddings.keypoints import KeypointConfig, RootSiftExtractor
from embeddings.photo import Photo
from embeddings.protocol import LocalFeatures
from tests.synthetic import HEIGHT, WIDTH, camera_jpeg, fluke, perturb, sighting

# Working-size keypoints only: the plain matcher below checks the generator, and its
# ratio test counts a marking found at two levels as ambiguous with itself.
EXTRACTOR = RootSiftExtractor(KeypointConfig(coarse_levels=()))


def features(pixels: np.ndarray) -> LocalFeatures:
    return EXTRACTOR.extract(Photo(pixels=pixels, sha256="0" * 64, format="PNG"))


def inliers(query: LocalFeatures, gallery: LocalFeatures) -> int:
    """Lowe ratio-test matches consistent with one similarity transform (RANSAC): a
    plain matcher, independent of the engine under test."""
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(
        query.descriptors.astype(np.float32), gallery.descriptors.astype(np.float32), k=2
    )
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < 3:
        return 0
    src = query.keypoints[[m.queryIdx for m in good], :2]
    dst = gallery.keypoints[[m.trainIdx for m in good], :2]
    _, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=5)
    return 0 if mask is None else int(mask.sum())


def test_same_inputs_give_same_pixels() -> None:
    assert np.array_equal(fluke("HW-1"), fluke("HW-1"))
    assert np.array_equal(fluke(7), fluke("7"))  # folder names are strings
    assert np.array_equal(sighting("HW-1", 3), sighting("HW-1", 3))
    assert not np.array_equal(fluke("HW-1"), fluke("HW-2"))
    assert not np.array_equal(sighting("HW-1", 3), sighting("HW-1", 4))


@pytest.mark.parametrize("seed", range(8))
def test_perturbed_photo_is_a_smaller_rgb_image(seed: int) -> None:
    out = perturb(fluke("HW-1"), seed)

    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert 0.8 * HEIGHT - 1 <= out.shape[0] <= HEIGHT
    assert 0.8 * WIDTH - 1 <= out.shape[1] <= WIDTH
    assert out.flags.c_contiguous


def test_patterns_avoid_what_the_extractor_masks() -> None:
    config = KeypointConfig()
    for individual in range(5):
        image = sighting(individual, seed=individual)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        # Glare (saturated pixels) and uniform rows/columns (letterbox padding) are
        # masked out by the extractor; the generator must produce neither.
        assert gray.max() < config.glare_level
        for axis in (0, 1):
            spread = gray.max(axis=axis).astype(int) - gray.min(axis=axis).astype(int)
            assert spread.min() > config.padding_tolerance


@pytest.mark.slow
def test_individuals_are_distinguishable_under_perturbation() -> None:
    individuals = [f"HW-{i}" for i in range(8)]
    gallery = {i: [features(sighting(i, seed)) for seed in (0, 1)] for i in individuals}

    genuine, impostor = [], []
    for individual in individuals:
        query = features(sighting(individual, seed=17))
        for other, photos in gallery.items():
            best = max(inliers(query, g) for g in photos)
            (genuine if other == individual else impostor).append(best)

    assert all(len(f.keypoints) >= 150 for photos in gallery.values() for f in photos)
    # Every view of an animal shares far more verified markings with its own photos than
    # any other animal does.
    assert min(genuine) >= 3 * max(impostor)
    assert min(genuine) >= 30


@pytest.mark.parametrize("position", [(-33.8599, 151.2093), (57.3, -6.2), (0.0, 0.0)])
def test_a_camera_jpeg_carries_its_date_and_position(position: tuple[float, float]) -> None:
    content = camera_jpeg(sighting(3, 0), taken_at=datetime(2024, 6, 1, 14, 3), position=position)
    photo = load_photo(content)
    assert photo.taken_at == "2024-06-01T14:03:00"
    assert (photo.latitude, photo.longitude) == pytest.approx(position, abs=1e-6)
