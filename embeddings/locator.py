"""Where the animals are in a whole frame: class activation maps of Lite0's whale classes.

The ImageNet head is linear over the pooled last feature map, so applying it to each
cell of the map instead (a class activation map, Zhou et al. 2016) shows which parts of
the photo made the whale logits high. Cells hot for the whale classes are grouped into
connected regions, and each region, grown by a margin, is one animal's box. Local
features are then extracted from the box at full resolution instead of from the whole
frame, where sea, sky and boats would take most of the keypoints.

A photo no larger than the local features' working size is a crop already and is
searched whole, as is a photo whose animal fills most of the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from embeddings.lite0 import Lite0Net
from embeddings.photo import Box, Photo, union

__all__ = ["Lite0Locator"]

HOT_LEVEL = 0.5
"""A cell belongs to an animal at this share of the way from the map's coldest to its
hottest cell: half-maximum, the usual CAM box threshold."""
PEAK_SHARE = 0.75
"""A second region is a second animal only when its own peak reaches this share of the
hottest one; weaker ones are mostly splash and wake beside the animal."""
MARGIN = 0.15
"""Each box grows by this share of its width and height on every side: the map's cells
are coarse (32 px of the network's input) and fin edges and fluke tips lie at the rim."""
TIGHT_SHARE = 0.6
"""A box covering this share of the photo's area means the photo is framed on the
animal already: it is searched whole."""
_UPSAMPLE = 4
"""The map is smoothed to this many times its cells before thresholding, so a region's
edge falls between cell centres rather than on the cell grid."""


class Lite0Locator:
    """Boxes of the animals in a photo, hottest first.

    Args:
        net: the network (its forward pass is shared with the gate, and so are its
            whale classes).
        whole_below: photos whose longer side is at most this many pixels are crops
            already (the local features' working size: a crop of them would be enlarged,
            not sharpened).
        min_side: boxes are grown to at least this many pixels a side where the photo
            allows, so a small animal keeps some context to be matched in.
    """

    name = "lite0-cam"

    def __init__(
        self,
        net: Lite0Net,
        *,
        whole_below: int,
        min_side: int,
    ) -> None:
        self.version = net.version
        self._net = net
        self._weights, self._biases = net.class_weights(net.whale_classes)
        self.whole_below = whole_below
        self.min_side = min_side

    def heat(self, photo: Photo) -> np.ndarray:
        """(h, w) whale logit of each cell of the feature map (log-sum-exp over the
        classes), on the network's grid over the whole photo."""
        feature_map = self._net(photo).feature_map
        maps = np.tensordot(self._weights, feature_map, axes=1) + self._biases[:, None, None]
        top = maps.max(axis=0)
        return top + np.log(np.exp(maps - top).sum(axis=0))

    def locate(self, photo: Photo) -> list[Box]:
        """The animals' boxes, hottest first; [whole photo] for a crop."""
        whole = Box.whole(photo)
        if photo.long_side <= self.whole_below:
            return [whole]
        heat = self.heat(photo)
        span = float(heat.max() - heat.min())
        if span <= 0:
            return [whole]
        cells_h, cells_w = heat.shape
        smooth = cv2.resize(
            (heat - heat.min()) / span,
            (cells_w * _UPSAMPLE, cells_h * _UPSAMPLE),
            interpolation=cv2.INTER_LINEAR,
        )
        count, labels = cv2.connectedComponents((smooth >= HOT_LEVEL).astype(np.uint8), 8)
        regions = []
        for label in range(1, count):
            ys, xs = np.nonzero(labels == label)
            regions.append((float(smooth[ys, xs].max()), xs, ys))
        regions.sort(key=lambda r: -r[0])
        scale_x, scale_y = photo.width / smooth.shape[1], photo.height / smooth.shape[0]
        boxes: list[Box] = []
        for peak, xs, ys in regions:
            if peak < PEAK_SHARE * regions[0][0]:
                break
            box = self._grown(
                photo,
                xs.min() * scale_x,
                ys.min() * scale_y,
                (xs.max() + 1) * scale_x,
                (ys.max() + 1) * scale_y,
            )
            # Grown boxes that overlap are one animal seen in two hot parts.
            for i, kept in enumerate(boxes):
                if kept.overlaps(box):
                    boxes[i] = union([kept, box])
                    break
            else:
                boxes.append(box)
        if not boxes or union(boxes).area >= TIGHT_SHARE * whole.area:
            return [whole]
        return boxes

    def region(self, photo: Photo) -> Box | None:
        """Every animal found, as one box (what an enrolled photo's features are
        extracted from: the photo's label is about the animal, not the sea around it);
        None for the whole photo."""
        boxes = self.locate(photo)
        found = union(boxes)
        return None if found == Box.whole(photo) else found

    def _grown(self, photo: Photo, x0: float, y0: float, x1: float, y1: float) -> Box:
        """The box with its margin, at least `min_side` a side, inside the photo."""
        width, height = x1 - x0, y1 - y0
        width, height = (
            max(width * (1 + 2 * MARGIN), self.min_side),
            max(height * (1 + 2 * MARGIN), self.min_side),
        )
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1 = _span(cx, width, photo.width)
        y0, y1 = _span(cy, height, photo.height)
        return Box(x0, y0, x1, y1)


def _span(centre: float, size: float, limit: int) -> tuple[int, int]:
    """(start, end) of a span of `size` around `centre`, shifted inside [0, limit) and
    no larger than it."""
    size = min(size, limit)
    start = min(max(centre - size / 2, 0.0), limit - size)
    return int(start), min(limit, round(start + size))
