"""The class-activation-map locator on feature maps chosen by the test, so every box it
draws can be checked against where the heat was put."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from embeddings.lite0 import Lite0Outputs
from embeddings.locator import MARGIN, PEAK_SHARE, Lite0Locator
from embeddings.photo import Box, Photo

CELLS = 7


class HeatNet:
    """Stands in for `Lite0Net`: channel 0 of its feature map is the whale evidence."""

    version = "test"
    whale_classes: ClassVar[list[int]] = [147, 148]

    def __init__(self, heat: np.ndarray | None) -> None:
        self.heat = heat
        self.calls = 0

    def __call__(self, photo: Photo) -> Lite0Outputs:
        self.calls += 1
        assert self.heat is not None, "a crop must not be run through the network"
        feature_map = np.stack([self.heat, np.ones_like(self.heat)]).astype(np.float32)
        return Lite0Outputs(np.zeros(1000, np.float32), np.zeros(2, np.float32), feature_map)

    def class_weights(self, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        weights = np.zeros((len(classes), 2), np.float32)
        weights[:, 0] = 1.0
        return weights, np.zeros(len(classes), np.float32)


def photo(width: int, height: int) -> Photo:
    return Photo(pixels=np.zeros((height, width, 3), np.uint8), sha256="0" * 64, format="PNG")


def locator(heat: np.ndarray | None, min_side: int = 100) -> Lite0Locator:
    return Lite0Locator(HeatNet(heat), whole_below=600, min_side=min_side)  # type: ignore[arg-type]


def heat_at(*cells: tuple[int, int, float]) -> np.ndarray:
    heat = np.zeros((CELLS, CELLS), np.float32)
    for row, col, value in cells:
        heat[row, col] = value
    return heat


def test_one_hot_region_becomes_one_box_around_it_in_photo_pixels() -> None:
    frame = photo(1400, 700)  # cells of 200 x 100 px
    boxes = locator(heat_at((1, 2, 5.0), (2, 2, 5.0))).locate(frame)

    assert len(boxes) == 1
    box = boxes[0]
    # The hot cells span x 400-600, y 100-300; the box holds them with its margin and
    # stays inside the photo, far smaller than it.
    assert box.x0 <= 400 - MARGIN * 100 and box.x1 >= 600
    assert box.y0 <= 100 and box.y1 >= 300
    assert 0 <= box.x0 < box.x1 <= 1400 and 0 <= box.y0 < box.y1 <= 700
    assert box.area < 0.2 * 1400 * 700


def test_two_animals_are_two_boxes_hottest_first_and_a_weak_blob_is_none() -> None:
    frame = photo(1400, 1400)
    # Relative peaks 1.0, 0.9 and 0.6: the last is hot, but too weak beside the others.
    heat = heat_at((1, 1, 4.5), (5, 5, 5.0), (1, 5, 3.0))
    assert 0.6 < PEAK_SHARE < 0.9
    boxes = locator(heat).locate(frame)

    assert len(boxes) == 2
    first, second = boxes
    assert first.x0 >= 700 and first.y0 >= 700  # (5, 5), the hotter one
    assert second.x1 <= 700 and second.y1 <= 700
    assert not first.overlaps(second)


def test_boxes_grow_to_the_minimum_side_and_stay_inside_the_photo() -> None:
    frame = photo(2800, 1400)
    box = locator(heat_at((6, 6, 3.0)), min_side=900).locate(frame)[0]

    assert box.x1 - box.x0 >= 900 and box.y1 - box.y0 >= 900
    assert box.x1 == 2800 and box.y1 == 1400  # shifted in from the corner


def test_a_crop_is_searched_whole_without_running_the_network() -> None:
    small = photo(600, 400)
    found = locator(None)

    assert found.locate(small) == [Box.whole(small)]
    assert found.region(small) is None


def test_an_animal_filling_the_frame_means_the_whole_photo() -> None:
    frame = photo(1400, 1400)
    heat = np.full((CELLS, CELLS), 5.0, np.float32)
    heat[0, 0] = 0.0

    assert locator(heat).locate(frame) == [Box.whole(frame)]


def test_the_enrolment_region_holds_every_animal() -> None:
    frame = photo(1400, 1400)
    found = locator(heat_at((1, 1, 5.0), (5, 5, 5.0)))

    region = found.region(frame)

    assert region is not None
    for box in found.locate(frame):
        assert region.x0 <= box.x0 and region.y0 <= box.y0
        assert region.x1 >= box.x1 and region.y1 >= box.y1


@pytest.mark.parametrize("cold", [0.0, 3.0])
def test_a_flat_map_finds_no_animal_in_particular(cold: float) -> None:
    frame = photo(1400, 1400)
    assert locator(np.full((CELLS, CELLS), cold, np.float32)).locate(frame) == [Box.whole(frame)]
