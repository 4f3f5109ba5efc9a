"""The RootSIFT extractor: shapes, coordinates, padding and glare masks, versions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from embeddings.keypoints import KeypointConfig, RootSiftExtractor
from embeddings.photo import Photo
from embeddings.protocol import Extractor
from tests.synthetic import fluke, rolled

EXTRACTOR = RootSiftExtractor()
FINE_ONLY = RootSiftExtractor(KeypointConfig(coarse_levels=()))
"""Working-size keypoints only, to tell the coarse level's from them."""


def photo(pixels: np.ndarray) -> Photo:
    return Photo(pixels=np.ascontiguousarray(pixels), sha256="0" * 64, format="PNG")


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.full((240, 320, 3), 128, np.uint8),
        np.full((240, 320, 3), 255, np.uint8),
    ],
    ids=["one-pixel", "uniform-grey", "all-white"],
)
def test_featureless_photos_give_empty_arrays(pixels: np.ndarray) -> None:
    features = EXTRACTOR.extract(photo(pixels))
    assert features.keypoints.shape == (0, 4)
    assert features.descriptors.shape == (0, 128)
    assert features.descriptors.dtype == np.uint8


def test_shapes_dtypes_and_rootsift_normalisation() -> None:
    features = EXTRACTOR.extract(photo(fluke("a")))
    n = len(features.keypoints)
    assert 200 <= n <= EXTRACTOR.config.max_features
    assert features.keypoints.dtype == np.float32
    assert features.descriptors.shape == (n, 128)
    norms = np.linalg.norm(features.descriptors.astype(np.float64) / 255.0, axis=1)
    assert np.allclose(norms, 1.0, atol=0.03)


def test_keypoints_are_in_the_photo_own_coordinates() -> None:
    """The working resize is undone: a photo and its half-size copy put their keypoints
    on the same markings, up to the factor 2."""
    import cv2

    big = fluke("b", width=960, height=640)
    small = cv2.resize(big, (480, 320), interpolation=cv2.INTER_AREA)
    kb = EXTRACTOR.extract(photo(big)).keypoints
    ks = EXTRACTOR.extract(photo(small)).keypoints
    assert kb[:, 0].max() > 600 and ks[:, 0].max() < 480
    # Every keypoint of the small photo has one of the big photo within 3 px (x2).
    distances = np.linalg.norm(ks[:, None, :2] * 2 - kb[None, :, :2], axis=2).min(axis=1)
    assert np.median(distances) < 3.0


def test_upright_keypoints_have_angle_zero_and_no_duplicates() -> None:
    features = EXTRACTOR.extract(photo(fluke("c")))
    assert np.all(features.keypoints[:, 3] == 0.0)
    rounded = np.round(features.keypoints[:, :3], 1)
    assert len(np.unique(rounded, axis=0)) == len(rounded)
    rotating = RootSiftExtractor(KeypointConfig(upright=False)).extract(photo(fluke("c")))
    assert np.any(rotating.keypoints[:, 3] != 0.0)


def test_letterbox_padding_gets_no_keypoints() -> None:
    """A white letterbox (as in the Kaggle fluke crops) is masked with a margin."""
    image = fluke("d", width=300, height=160)
    padded = np.full((300, 300, 3), 255, np.uint8)
    padded[70:230] = image
    features = EXTRACTOR.extract(photo(padded))
    y = features.keypoints[:, 1]
    assert len(y) > 50
    assert y.min() > 70 and y.max() < 230


def test_glare_gets_no_keypoints() -> None:
    image = fluke("e").copy()
    image[100:140, 200:260] = 255  # a saturated glare patch with sharp corners
    features = EXTRACTOR.extract(photo(image))
    x, y = features.keypoints[:, 0], features.keypoints[:, 1]
    inside = (x >= 200) & (x < 260) & (y >= 100) & (y < 140)
    assert not inside.any()


def test_version_follows_the_settings() -> None:
    assert RootSiftExtractor().version == RootSiftExtractor(KeypointConfig()).version
    assert (
        RootSiftExtractor().version != RootSiftExtractor(KeypointConfig(max_features=500)).version
    )
    assert isinstance(EXTRACTOR, Extractor)
    assert EXTRACTOR.kind == "local"


def _matches(a: np.ndarray, b: np.ndarray) -> int:
    """Lowe ratio-test matches from descriptors `a` to `b`."""
    distances = np.linalg.norm(a[:, None, :].astype(np.float32) - b[None, :, :], axis=2)
    two = np.sort(distances, axis=1)[:, :2]
    return int((two[:, 0] < 0.8 * two[:, 1]).sum())


def test_a_coarse_level_adds_large_keypoints_in_the_photo_own_coordinates() -> None:
    """The coarse level's keypoints follow the working size's, unchanged, and are the
    photo's coarse structure: about `factor` times larger, inside the photo."""
    pixels = photo(fluke("coarse", width=960, height=640))
    fine = FINE_ONLY.extract(pixels)
    both = EXTRACTOR.extract(pixels)
    n = len(fine.keypoints)
    coarse = both.keypoints[n:]
    assert EXTRACTOR.config.coarse_levels == (4.0,)
    assert np.array_equal(both.keypoints[:n], fine.keypoints)
    assert np.array_equal(both.descriptors[:n], fine.descriptors)
    assert 0.1 * n <= len(coarse) <= 0.6 * n
    assert np.median(coarse[:, 2]) > 3 * np.median(fine.keypoints[:, 2])
    assert coarse[:, 0].min() >= 0 and coarse[:, 0].max() < 960
    assert coarse[:, 1].min() >= 0 and coarse[:, 1].max() < 640


def test_a_crop_coarse_level_is_the_crop_taken_from_farther_away() -> None:
    """A 300 px crop is worked enlarged 2x; its coarse level must hold only the detail of
    the crop shrunk 4x (and enlarged as that small photo would be), so that a distant
    photo's working-size keypoints find it."""
    crop = fluke("crop", width=300, height=200)
    distant = cv2.resize(crop, (75, 50), interpolation=cv2.INTER_AREA)
    n = len(FINE_ONLY.extract(photo(crop)).keypoints)
    coarse = EXTRACTOR.extract(photo(crop)).keypoints[n:, :2]
    seen_far = FINE_ONLY.extract(photo(distant)).keypoints[:, :2] * 4
    nearest = np.linalg.norm(coarse[:, None] - seen_far[None], axis=2).min(axis=1)
    assert len(coarse) > 20
    assert np.mean(nearest < 0.5) > 0.9, np.mean(nearest < 0.5)


def test_a_coarse_level_too_small_for_sift_is_skipped() -> None:
    """A 28 px crop is worked at 56 px; a quarter of that holds no descriptor window."""
    small = photo(fluke("tiny", width=28, height=28))
    features = EXTRACTOR.extract(small)
    assert len(features.keypoints) > 0
    assert np.array_equal(features.keypoints, FINE_ONLY.extract(small).keypoints)


def test_coarse_levels_change_the_extractor_version() -> None:
    assert FINE_ONLY.version != EXTRACTOR.version


def test_roll_zero_is_the_upright_extraction() -> None:
    pixels = photo(fluke("roll"))
    plain = EXTRACTOR.extract(pixels)
    (rolled,) = EXTRACTOR.extract_rolled(pixels, (0.0,))
    assert np.array_equal(plain.keypoints, rolled.keypoints)
    assert np.array_equal(plain.descriptors, rolled.descriptors)


def test_a_detection_described_at_a_roll_describes_upright_again() -> None:
    pixels = photo(fluke("roll"))
    detection = EXTRACTOR.detect(pixels)
    rolled_view = detection.describe(20.0)
    again = detection.describe()
    plain = EXTRACTOR.extract(pixels)
    assert not np.array_equal(rolled_view.descriptors, plain.descriptors)
    assert np.array_equal(again.keypoints, plain.keypoints)
    assert np.array_equal(again.descriptors, plain.descriptors)


def test_rolls_described_in_one_pass_are_each_roll_described_alone() -> None:
    detection = EXTRACTOR.detect(photo(fluke("roll")))
    rolls = (0.0, 15.0, -15.0)
    together = detection.describe_rolls(rolls)
    for roll, view in zip(rolls, together, strict=True):
        alone = detection.describe(roll)
        assert len(view.descriptors) > 0
        assert np.array_equal(view.keypoints, alone.keypoints)
        assert np.array_equal(view.descriptors, alone.descriptors)
    assert not np.array_equal(together[1].descriptors, together[2].descriptors)


def test_rolls_described_from_the_strongest_keypoints_describe_only_those() -> None:
    detection = EXTRACTOR.detect(photo(fluke("roll")))
    (every,) = detection.describe_rolls([15.0])
    strongest = len(every.descriptors) // 4
    (few,) = detection.describe_rolls([15.0], strongest)
    levels = 1 + len(EXTRACTOR.config.coarse_levels)
    assert 0 < len(few.descriptors) <= levels * strongest < len(every.descriptors)
    described = {
        (tuple(k), d.tobytes())
        for k, d in zip(every.keypoints.tolist(), every.descriptors, strict=True)
    }
    for k, d in zip(few.keypoints.tolist(), few.descriptors, strict=True):
        assert (tuple(k), d.tobytes()) in described
    (all_kept,) = detection.describe_rolls([15.0], len(every.descriptors))
    assert np.array_equal(all_kept.descriptors, every.descriptors)


def test_rolls_described_in_parallel_threads_are_each_roll_described_alone() -> None:
    detection = EXTRACTOR.detect(photo(fluke("roll")))
    rolls = [15.0, -15.0, 30.0, -30.0] * 2
    with ThreadPoolExecutor(len(rolls)) as pool:
        parallel = list(pool.map(detection.describe, rolls))
    for roll, view in zip(rolls, parallel, strict=True):
        alone = detection.describe(roll)
        assert np.array_equal(view.keypoints, alone.keypoints)
        assert np.array_equal(view.descriptors, alone.descriptors)


def test_a_roll_hypothesis_recovers_the_matches_of_a_rolled_photo() -> None:
    pixels = fluke("roll")
    gallery = EXTRACTOR.extract(photo(pixels)).descriptors
    views = EXTRACTOR.extract_rolled(photo(rolled(pixels, 20.0)), (0.0, 20.0, -20.0))
    assert all(np.array_equal(v.keypoints, views[0].keypoints) for v in views)
    upright, *hypotheses = (_matches(v.descriptors, gallery) for v in views)
    assert max(hypotheses) > 1.5 * upright


def test_rolls_need_upright_descriptors() -> None:
    extractor = RootSiftExtractor(KeypointConfig(upright=False))
    with pytest.raises(ValueError, match="upright"):
        extractor.extract_rolled(photo(fluke("roll")), (15.0,))


def _rotated_with_fill(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` rotated on an enlarged canvas with flat grey corners (nearest-neighbour,
    as PIL's default rotate), and the (H, W) bool mask of the photo's own pixels."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    side = int(np.ceil(np.hypot(width, height)))
    matrix[:, 2] += ((side - width) / 2, (side - height) / 2)
    warp = dict(dsize=(side, side), flags=cv2.INTER_NEAREST, borderValue=(128, 128, 128))
    rotated = cv2.warpAffine(image, matrix, **warp)
    ones = np.ones((height, width), np.uint8)
    inside = cv2.warpAffine(ones, matrix, **warp | dict(borderValue=0))
    return rotated, inside.astype(bool)


def test_flat_fill_of_a_rotated_crop_gets_no_keypoints() -> None:
    """The grey corners of a rotated crop are fill: their aliased edges gave keypoints
    (as they still do with the fill mask off), which must now all lie on the photo, more
    than a pixel from the fill."""
    rotated, inside = _rotated_with_fill(fluke("fill", width=300, height=200), 15.0)
    near_fill = ~cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    def on_fill(extractor: RootSiftExtractor) -> int:
        points = np.rint(extractor.extract(photo(rotated)).keypoints[:, :2]).astype(int)
        return int(near_fill[points[:, 1], points[:, 0]].sum())

    assert on_fill(RootSiftExtractor(KeypointConfig(fill_window=0))) >= 50
    assert on_fill(EXTRACTOR) == 0


def test_the_fill_mask_leaves_a_textured_photo_alone() -> None:
    pixels = photo(fluke("texture", width=480, height=320))
    unmasked = RootSiftExtractor(KeypointConfig(fill_window=0)).extract(pixels)
    assert np.array_equal(EXTRACTOR.extract(pixels).keypoints, unmasked.keypoints)
