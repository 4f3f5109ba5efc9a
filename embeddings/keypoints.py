"""RootSIFT local features: the weight-free identification path.

RootSIFT (Arandjelović & Zisserman, "Three things everyone should know to improve object
retrieval", CVPR 2012) is SIFT (Lowe, IJCV 2004) with each descriptor L1-normalised and
square-rooted, so that Euclidean distance between descriptors equals the Hellinger kernel.
Markings on flukes, fins and callosities are matched by these keypoints, and the matches
are checked geometrically by the indexer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Annotated, NamedTuple

import cv2
import msgspec
import numpy as np

from embeddings.photo import Box, Photo
from embeddings.protocol import FeatureKind, LocalFeatures

__all__ = ["DetectedKeypoints", "KeypointConfig", "RootSiftExtractor"]

_MIN_SIDE = 16
"""Below this many pixels (after resizing) a side holds no SIFT descriptor window."""


class KeypointConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of the RootSIFT extractor. Changing any of them changes the extractor's
    version, so stored features of other settings are never mixed with these. Only
    `long_side` and `max_features` are user settings (`[features]`); the rest were chosen
    on the development sets (the measurements are in the commit history and reports/)."""

    long_side: int = 600
    """Photos are resized so that their longer side has this many pixels; small crops
    are upscaled too (up to `max_upscale`): SIFT finds too few stable keypoints on a
    300 px fluke."""
    max_upscale: float = 2.0
    """Largest enlargement factor; enlarging a blurry crop further adds no detail."""
    max_features: int = 1500
    """Strongest keypoints kept per photo at each level; bounds memory and search time."""
    coarse_levels: tuple[Annotated[float, msgspec.Meta(gt=1)], ...] = (4.0,)
    """Keypoints are also detected on the photo as seen from this many times farther:
    blurred, distant or small photos lack the fine detail the working size is made of."""
    contrast_threshold: float = 0.024
    """SIFT's DoG contrast threshold: whale skin is low-contrast, so lower than
    OpenCV's 0.04. Not below 0.0236: OpenCV pre-selects extrema whose sampled DoG exceeds
    floor(0.5 * threshold / 3 * 255) grey levels, which rounds to 0 there, and then
    interpolates every extremum however faint; that took a third of detection time for
    6 % more keypoints, the faintest."""
    clahe: bool = False
    """Equalise local contrast (CLAHE) before detection."""
    upright: bool = True
    """Describe keypoints at orientation 0: survey photos are level, and orientation
    noise costs more matches than rotation invariance gains (roll is searched instead)."""
    padding_tolerance: int = 6
    """Grey-level tolerance of a uniform border (letterbox padding) whose keypoints are
    dropped."""
    glare_level: int = 250
    """Grey level at or above which a pixel counts as saturated glare or padding."""
    fill_window: int = 15
    """Side, in working-size pixels, of the smallest square of exactly one grey level that
    counts as fill (a rotated crop's corners): keypoints on its aliased edges are dropped."""


class RootSiftExtractor:
    """Callable from a `Photo` to RootSIFT `LocalFeatures`."""

    name = "rootsift"
    kind: FeatureKind = "local"

    def __init__(self, config: KeypointConfig | None = None) -> None:
        self.config = config or KeypointConfig()
        settings = msgspec.json.encode(self.config)
        self.version = "1-" + hashlib.sha256(settings).hexdigest()[:10]

    def extract(self, photo: Photo, box: Box | None = None) -> LocalFeatures:
        """Detect keypoints and describe them, in the whole photo or in `box` only.

        Returns:
            LocalFeatures with keypoints in the photo's own pixel coordinates (the working
            resize is undone) and uint8-quantised RootSIFT descriptors, (N, 128).
        """
        return self.detect(photo, box).describe()

    def extract_rolled(self, photo: Photo, rolls: Sequence[float]) -> list[LocalFeatures]:
        """Features of `photo` once per roll angle (degrees): `detect`, then
        `DetectedKeypoints.describe_rolls`."""
        return self.detect(photo).describe_rolls(rolls)

    def detect(self, photo: Photo, box: Box | None = None) -> DetectedKeypoints:
        """Find the keypoints of the photo, or of `box` in it (an animal found by
        `embeddings.locator`, at the photo's full resolution), to be described by the
        returned `DetectedKeypoints`; their coordinates are the photo's either way."""
        pixels = photo.pixels if box is None else photo.pixels[box.y0 : box.y1, box.x0 : box.x1]
        gray = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
        sift = self._new_sift()
        working = min(self.config.long_side / max(gray.shape), self.config.max_upscale)
        levels = [self._level(sift, _resized(gray, working), working)]
        # A coarse level is the working image shrunk by `factor`, but made from the photo
        # shrunk and then enlarged as much as the working image was: shrinking an enlarged
        # crop would keep detail that the same crop taken from farther away, or blurred,
        # does not have, and such a query's working level could not match it.
        enlarge = max(working, 1.0)
        for factor in self.config.coarse_levels:
            small = _resized(gray, working / enlarge / factor)
            if min(small.shape) < _MIN_SIDE:
                continue
            levels.append(self._level(sift, _resized(small, enlarge), working / factor))
        origin = (0.0, 0.0) if box is None else (float(box.x0), float(box.y0))
        return DetectedKeypoints(self._new_sift, levels, upright=self.config.upright, origin=origin)

    def _new_sift(self) -> cv2.SIFT:
        # cv2.SIFT is not re-entrant across threads; a fresh detector per call is cheap.
        return cv2.SIFT_create(
            nfeatures=self.config.max_features,
            contrastThreshold=self.config.contrast_threshold,
        )

    def _level(self, sift: cv2.SIFT, gray: np.ndarray, scale: float) -> _Level:
        """Keypoints of `gray`, the photo resized by `scale`."""
        if min(gray.shape) < _MIN_SIDE:
            return _Level(gray, [], scale)
        if self.config.clahe:
            gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
        keypoints = sift.detect(gray, self._content_mask(gray))
        if self.config.upright:
            keypoints = _upright(keypoints)
        return _Level(gray, keypoints, scale)

    def _content_mask(self, gray: np.ndarray) -> np.ndarray:
        """(H, W) uint8 mask, 0 on uniform letterbox borders, flat fill and saturated glare.

        Padding, fill and blown-out highlights have no markings, but their straight edges
        give strong keypoints that match every other padded photo.
        """
        mask = np.full(gray.shape, 255, np.uint8)
        mask[gray >= self.config.glare_level] = 0
        if self.config.fill_window > 0:
            mask[_flat(gray, self.config.fill_window)] = 0
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


class _Level(NamedTuple):
    """Keypoints found on the photo resized by `scale`, and that resized grey image."""

    gray: np.ndarray
    keypoints: Sequence[cv2.KeyPoint]
    scale: float


class DetectedKeypoints:
    """One photo's keypoints, found once and described on demand.

    Upright descriptors of a photo taken with the camera rolled match the gallery's
    upright ones again when described at about the same roll, so a query can be searched
    under a few roll hypotheses without giving up the accuracy of upright description.
    The keypoints are found once for all hypotheses; only description is repeated, and
    may run in several threads at once (each call makes its own SIFT detector).
    """

    def __init__(
        self,
        new_sift: Callable[[], cv2.SIFT],
        levels: Sequence[_Level],
        *,
        upright: bool,
        origin: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self._new_sift = new_sift
        self._levels = levels
        self._upright = upright
        self._origin = origin
        """Where the detected region's corner lies in the photo."""

    @property
    def enlarged(self) -> bool:
        """Whether the region was no larger than the working size, and so was described
        at its own size or enlarged (a crop of the animal) rather than shrunk (a frame)."""
        return bool(self._levels) and self._levels[0].scale >= 1.0

    def describe(self, roll: float = 0.0, strongest: int | None = None) -> LocalFeatures:
        """The keypoints described at `roll` degrees (0: upright, as stored), only the
        `strongest` of each level if given (see `describe_rolls`).

        Raises:
            ValueError: the extractor is not `upright` (its descriptors are already
                rotation invariant) and a roll other than 0 is asked for.
        """
        return self.describe_rolls([roll], strongest)[0]

    def describe_rolls(
        self, rolls: Sequence[float], strongest: int | None = None
    ) -> list[LocalFeatures]:
        """The keypoints described at each of `rolls`, as `describe` would, in one SIFT
        pass per level: the scale-space pyramid, which every pass builds again (about 40
        of the 100 ms a pass takes on a 600 px fluke's thousand keypoints), is built once.

        Args:
            rolls: degrees; 0 is upright, as stored.
            strongest: describe only this many keypoints of each level, those of the
                largest SIFT response; None for all.

        Raises:
            ValueError: as `describe`.
        """
        if not self._upright and any(roll != 0.0 for roll in rolls):
            raise ValueError("roll angles need upright descriptors (KeypointConfig.upright)")
        views: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in rolls]
        sift = self._new_sift()
        for level in self._levels:
            if strongest is not None and len(level.keypoints) > strongest:
                kept = sorted(level.keypoints, key=lambda k: k.response, reverse=True)
                level = level._replace(keypoints=kept[:strongest])
            for view, part in zip(views, self._describe_level(sift, level, rolls), strict=True):
                if part is not None:
                    view.append(part)
        return [
            LocalFeatures(
                keypoints=np.concatenate([points for points, _ in view]),
                descriptors=_root_sift(np.concatenate([descriptors for _, descriptors in view])),
            )
            if view
            else _empty()
            for view in views
        ]

    def _describe_level(
        self, sift: cv2.SIFT, level: _Level, rolls: Sequence[float]
    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per roll, (N, 4) keypoints in the photo's coordinates and (N, 128) SIFT
        descriptors of one level, or None when it has none."""
        if not level.keypoints:
            return [None] * len(rolls)
        if self._upright:
            # One copy of each keypoint per roll, its class_id naming the roll, so that
            # whatever compute keeps or drops, each descriptor goes to its own view.
            keypoints = [
                cv2.KeyPoint(k.pt[0], k.pt[1], k.size, roll % 360.0, k.response, k.octave, view)
                for view, roll in enumerate(rolls)
                for k in level.keypoints
            ]
        else:
            keypoints = list(level.keypoints)
        described, descriptors = sift.compute(level.gray, keypoints)
        if descriptors is None or not described:
            return [None] * len(rolls)
        scale = level.scale
        x0, y0 = self._origin
        # Upright keypoints are reported at angle 0 whatever roll described them: the
        # angle is the photo's geometry, the roll only a search hypothesis.
        points = np.array(
            [
                (
                    x0 + k.pt[0] / scale,
                    y0 + k.pt[1] / scale,
                    k.size / scale,
                    0.0 if self._upright else k.angle,
                )
                for k in described
            ],
            dtype=np.float32,
        )
        if not self._upright:
            return [(points, descriptors)] * len(rolls)
        view_of = np.array([k.class_id for k in described])
        parts: list[tuple[np.ndarray, np.ndarray] | None] = []
        for view in range(len(rolls)):
            mine = view_of == view
            parts.append((points[mine], descriptors[mine]) if mine.any() else None)
        return parts


def _resized(gray: np.ndarray, scale: float) -> np.ndarray:
    """`gray` resized by `scale`: area-averaged down, bicubic up."""
    if abs(scale - 1.0) <= 1e-3:
        return gray
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(gray, size, interpolation=interpolation)


def _flat(gray: np.ndarray, window: int) -> np.ndarray:
    """(H, W) bool, True on every `window` x `window` square of one grey level: a
    morphological opening of such squares, so fill of any shape is covered and a lone
    flat pixel inside texture is not."""
    square = np.ones((window, window), np.uint8)
    spread = cv2.dilate(gray, square).astype(np.int16) - cv2.erode(gray, square)
    return cv2.dilate((spread == 0).astype(np.uint8), square) > 0


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


def _root_sift(descriptors: np.ndarray) -> np.ndarray:
    """(N, 128) float32 SIFT -> (N, 128) uint8 RootSIFT, unit L2 norm before quantising."""
    d = descriptors.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    np.sqrt(d, out=d)
    return np.clip(np.rint(d * 255.0), 0, 255).astype(np.uint8)
