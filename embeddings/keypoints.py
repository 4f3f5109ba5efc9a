"""RootSIFT local features: the weight-free identification path.

RootSIFT (Arandjelović & Zisserman, "Three things everyone should know to improve object
retrieval", CVPR 2012) is SIFT (Lowe, IJCV 2004) with each descriptor L1-normalised and
square-rooted, so that Euclidean distance between descriptors equals the Hellinger kernel.
Markings on flukes, fins and callosities are matched by these keypoints, and the matches
are checked geometrically by the indexer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import cv2
import msgspec
import numpy as np

from embeddings.photo import Photo
from embeddings.protocol import FeatureKind, LocalFeatures

__all__ = ["KeypointConfig", "RootSiftExtractor"]

_MIN_SIDE = 16
"""Below this many pixels (after resizing) a side holds no SIFT descriptor window."""


class KeypointConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the RootSIFT extractor. Changing any of them changes the extractor's
    version, so stored features of the old settings are never mixed with new ones."""

    long_side: int = 600
    """Photos are resized so that their longer side has this many pixels. Small crops are
    upscaled too (up to `max_upscale`): SIFT finds too few stable keypoints on a 300 px
    fluke."""
    max_upscale: float = 2.0
    """Largest enlargement factor; enlarging a blurry crop further adds no detail."""
    max_features: int = 1500
    """Strongest keypoints kept per photo; bounds memory and search time."""
    contrast_threshold: float = 0.02
    """SIFT's DoG contrast threshold; lower finds more, weaker keypoints. Whale skin is
    low-contrast: 0.02 with 1500 keypoints beat OpenCV's 0.04 with 1000 by about 5 points
    of leave-one-out top-1 on the fluke set."""
    clahe: bool = False
    """Equalise local contrast (CLAHE) before detection."""
    upright: bool = True
    """Describe every keypoint at orientation 0 instead of its dominant gradient
    direction. Survey photos are taken level and the catalogue crops are aligned, so
    rotation invariance buys little and its orientation noise costs matches (on the
    right-whale set, leave-one-out top-1 rose from 0.46 to 0.53). Tolerates roughly
    +-20 degrees of camera roll."""
    dense_grid: int = 0
    """Also describe a regular grid of points, this many along the longer side, at two
    sizes (two and four grid steps), besides the detected keypoints; 0 turns it off.
    Aligned crops gain most: a right whale's callosity layout is a low-frequency pattern
    where the detector finds few stable points, while grid points sit at the same place
    on every aligned photo of it."""
    padding_tolerance: int = 6
    """Grey-level tolerance for treating a uniform border (letterbox padding) as not part
    of the photo; keypoints on or touching it are dropped."""
    glare_level: int = 250
    """Grey level at or above which a pixel counts as saturated glare or padding."""


class RootSiftExtractor:
    """Callable from a `Photo` to RootSIFT `LocalFeatures`."""

    name = "rootsift"
    kind: FeatureKind = "local"

    def __init__(self, config: KeypointConfig | None = None) -> None:
        self.config = config or KeypointConfig()
        settings = msgspec.json.encode(self.config)
        self.version = "1-" + hashlib.sha256(settings).hexdigest()[:10]

    def extract(self, photo: Photo) -> LocalFeatures:
        """Detect keypoints and describe them.

        Returns:
            LocalFeatures with keypoints in the photo's own pixel coordinates (the working
            resize is undone) and uint8-quantised RootSIFT descriptors, (N, 128).
        """
        gray = cv2.cvtColor(photo.pixels, cv2.COLOR_RGB2GRAY)
        scale = min(self.config.long_side / max(gray.shape), self.config.max_upscale)
        if abs(scale - 1.0) > 1e-3:
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            gray = cv2.resize(gray, size, interpolation=interpolation)
        if min(gray.shape) < _MIN_SIDE:
            return _empty()
        if self.config.clahe:
            gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
        mask = self._content_mask(gray)
        # cv2.SIFT is not re-entrant across threads; a fresh detector per call is cheap.
        sift = cv2.SIFT_create(
            nfeatures=self.config.max_features,
            contrastThreshold=self.config.contrast_threshold,
        )
        keypoints = sift.detect(gray, mask)
        if self.config.upright:
            keypoints = _upright(keypoints)
        if self.config.dense_grid:
            keypoints = [*keypoints, *_grid(mask, self.config.dense_grid)]
        keypoints, descriptors = sift.compute(gray, keypoints)
        if descriptors is None or not keypoints:
            return _empty()
        points = np.array(
            [(k.pt[0] / scale, k.pt[1] / scale, k.size / scale, k.angle) for k in keypoints],
            dtype=np.float32,
        )
        return LocalFeatures(keypoints=points, descriptors=_root_sift(descriptors))

    def _content_mask(self, gray: np.ndarray) -> np.ndarray:
        """(H, W) uint8 mask, 0 on uniform letterbox borders and saturated glare.

        Padding and blown-out highlights have no markings, but their straight edges give
        strong keypoints that match every other padded photo.
        """
        mask = np.full(gray.shape, 255, np.uint8)
        mask[gray >= self.config.glare_level] = 0
        tol = self.config.padding_tolerance
        for axis in (0, 1):
            lines = gray.max(axis=1 - axis).astype(int) - gray.min(axis=1 - axis).astype(int)
            uniform = lines <= tol
            for order in (range(len(uniform)), range(len(uniform) - 1, -1, -1)):
                for i in order:
                    if not uniform[i]:
                        break
                    if axis == 0:
                        mask[i, :] = 0
                    else:
                        mask[:, i] = 0
        # Keep keypoints whose support region would straddle the border out as well.
        return cv2.erode(mask, np.ones((9, 9), np.uint8))


def _empty() -> LocalFeatures:
    return LocalFeatures(
        keypoints=np.zeros((0, 4), np.float32), descriptors=np.zeros((0, 128), np.uint8)
    )


def _upright(keypoints: Sequence[cv2.KeyPoint]) -> list[cv2.KeyPoint]:
    """Keypoints at angle 0, one per location and scale: SIFT emits a copy of a keypoint
    for each strong orientation, and upright those copies would be identical."""
    seen: set[tuple[float, float, float]] = set()
    upright = []
    for keypoint in keypoints:
        key = (round(keypoint.pt[0], 1), round(keypoint.pt[1], 1), round(keypoint.size, 1))
        if key not in seen:
            seen.add(key)
            keypoint.angle = 0.0
            upright.append(keypoint)
    return upright


def _grid(mask: np.ndarray, cells: int) -> list[cv2.KeyPoint]:
    """Upright keypoints on a regular grid of `cells` steps along the longer side, at
    sizes of two and four steps, where the whole descriptor window is photo content."""
    height, width = mask.shape
    step = max(height, width) / cells
    points = []
    for size in (2 * step, 4 * step):
        half = size / 2
        for y in np.arange(half, height - half + 1e-6, step):
            for x in np.arange(half, width - half + 1e-6, step):
                if mask[int(y), int(x)]:
                    points.append(
                        cv2.KeyPoint(float(x), float(y), float(size), 0.0, 0.0, _octave(size))
                    )
    return points


def _octave(size: float) -> int:
    """OpenCV's packed scale-space position for a keypoint of this size.

    SIFT describes a keypoint on the pyramid level it was detected at; a hand-made
    keypoint left at level 0 would be described on the full-resolution image, with a
    window of the whole photo for a large size (ten times slower, measured).
    OpenCV's detector sets size = 2 * 1.6 * 2**(octave + layer / 3) (layer 1-3, octave
    -1 for its doubled first level) and packs octave | layer << 8 | offset << 16.
    """
    position = np.log2(size / 3.2)
    octave = int(np.ceil(position)) - 1
    layer = int(np.clip(round(3 * (position - octave)), 1, 3))
    return (octave & 0xFF) | (layer << 8) | (127 << 16)


def _root_sift(descriptors: np.ndarray) -> np.ndarray:
    """(N, 128) float32 SIFT -> (N, 128) uint8 RootSIFT, unit L2 norm before quantising."""
    d = descriptors.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    np.sqrt(d, out=d)
    return np.clip(np.rint(d * 255.0), 0, 255).astype(np.uint8)
