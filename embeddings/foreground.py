"""Weight-free localisation of the animal in a survey photo.

Whole-frame survey photos are mostly sea: waves, glare and whitewater give most of the
SIFT keypoints, so local-feature matching on the whole frame finds scene context rather
than the animal's markings. `find_animal` returns a box around the animal (dorsal fin,
back, fluke) so that features can be extracted from the crop instead.

Method (classical, no learned weights):

1. Work on a copy whose long side is about 512 px (the box is mapped back to full
   resolution). White or black letterbox padding is trimmed first.
2. Per-pixel features: CIE Lab colour and local texture (standard deviation of L over a
   small window), smoothed so that individual wave crests average out.
3. Sea model from the image border: the sea is the large region that touches the frame.
   Border pixels are clustered (k-means) and the clusters that together cover most
   (80 %) of the border are taken as "sea", each with its own diagonal spread. The top
   edge counts more than the bottom because animals surface from below and, in tight
   photos, fill the bottom edge. This is the border prior of background-detection
   saliency methods (Wei et al., "Geodesic saliency using background priors", ECCV 2012;
   Zhu et al., "Saliency optimization from robust background detection", CVPR 2014).
   The high cover errs on the safe side: when the animal fills much of the border it is
   absorbed into the "sea", nothing stands out, and the whole image is returned.
4. The normalised distance of every pixel to the nearest sea cluster is thresholded;
   morphological opening removes thin wave crests and closing fills the animal.
5. Connected components are scored by size, contrast to the sea, solidity, closeness to
   the centre and by how little they touch the frame (Zhu et al.'s boundary
   connectivity, length on the border / sqrt(area)). Bright, rough components
   (whitewater, glare) are down-weighted; beluga skin is bright but smooth and is kept.
6. The winner's box is grown by hysteresis (Canny, "A computational approach to edge
   detection", PAMI 1986) over weaker not-sea pixels connected to it, so that fin edges
   and tips that fade into the water are not cut, then widened by a margin.
7. When nothing convincing is found, or the box would cover half the frame or more
   anyway (tight photos of fins, flukes, backs), the whole image is returned: a loose
   crop only costs a little matching accuracy, a crop that cuts the animal out loses it.

Photos whose long side is small (already-cropped images such as 300 px fluke crops and
224 px right-whale heads) return the whole image without analysis.
"""

from __future__ import annotations

import cv2
import msgspec
import numpy as np

__all__ = ["Box", "LocaliserParams", "DEFAULT_PARAMS", "find_animal"]


class Box(msgspec.Struct, frozen=True, kw_only=True):
    """A box in the pixel coordinates of the photo passed to `find_animal`.

    Attributes:
        x0: left column, inclusive.
        y0: top row, inclusive.
        x1: right column, exclusive (so width = x1 - x0).
        y1: bottom row, exclusive.
        confidence: in [0, 1); a monotone squashing of the winning component's score.
            It ranks boxes, it is not a calibrated probability. 0 when nothing was found.
        whole_image: True when the box is the whole photo because nothing better than the
            whole image was found (or the photo is already a crop).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float
    whole_image: bool = False


class LocaliserParams(msgspec.Struct, frozen=True, kw_only=True):
    """Tuning knobs of `find_animal`.

    The defaults were set by eye on 65 Happywhale frames (7 individuals): few enough that
    they are probably over-fitted; re-check them on new sources before trusting them.

    Attributes:
        work_long_side: long side of the analysed copy, in pixels.
        min_long_side: photos whose long side (after trimming letterbox padding) is at
            most this are treated as crops and returned whole. Without this rule the
            localiser boxes the callosities instead of the head on 224 px right-whale
            crops and cuts some 300 px flukes.
        band: width of the border band that models the sea, as a fraction of the short
            side.
        clusters: k of the k-means on border pixels.
        sea_cover: weighted fraction of the border the sea clusters must cover.
        edge_weights: weights of the top, bottom, left and right border bands.
        blur_sigma: Gaussian smoothing of the features, in working pixels.
        texture_window: window of the local standard deviation of L.
        threshold: normalised distance to the sea above which a pixel is "not sea".
        low_threshold: weaker threshold over which the winning component's box grows.
        open_frac: opening radius as a fraction of the long side (removes wave crests).
        close_frac: closing radius as a fraction of the long side (fills the animal).
        min_area: smallest component kept, as a fraction of the image.
        glare_penalty: score factor of bright and rough (whitewater) components.
        weak_contrast: components below this median distance to the sea ...
        weak_area: ... and smaller than this fraction of the image are treated as noise.
        merge_ratio: other components scoring at least this fraction of the best, and
            close to it, are merged into the box (fragmented animals, e.g. belugas).
        min_score: below this best score the whole image is returned.
        margin: margin added on each side, as a fraction of the box size.
        whole_frac: a box covering more than this fraction of the image is returned as
            the whole image.
    """

    work_long_side: int = 512
    min_long_side: int = 400
    band: float = 0.04
    clusters: int = 4
    sea_cover: float = 0.8
    edge_weights: tuple[float, float, float, float] = (1.0, 0.3, 0.6, 0.6)
    blur_sigma: float = 2.0
    texture_window: int = 9
    threshold: float = 3.0
    low_threshold: float = 2.5
    open_frac: float = 0.012
    close_frac: float = 0.02
    min_area: float = 0.002
    glare_penalty: float = 0.2
    weak_contrast: float = 3.8
    weak_area: float = 0.05
    merge_ratio: float = 0.25
    min_score: float = 0.025
    margin: float = 0.10
    whole_frac: float = 0.5


DEFAULT_PARAMS = LocaliserParams()

# Lower bounds of the per-cluster spreads (L, a, b, texture): a perfectly flat border (a
# synthetic image, a calm grey sea) would otherwise make every pixel "far" from the sea.
_MIN_SPREAD = np.array([2.0, 1.5, 1.5, 1.0], np.float32)


def _whole(width: int, height: int, confidence: float = 0.0) -> Box:
    return Box(x0=0, y0=0, x1=width, y1=height, confidence=confidence, whole_image=True)


def _trim_letterbox(img: np.ndarray, tol: int = 12) -> tuple[int, int, int, int]:
    """Return (x0, y0, x1, y1) of `img` without white or black padding bars.

    Padding is a run of border rows/columns that are entirely near the colour of a white
    or black corner (white for the Kaggle fluke crops, black for many letterboxed
    images). Trimming keeps the padding's straight edge from being modelled as sea or
    found as an object. Runs on the working copy: on a 3600 px frame, numpy reductions
    over the channel axis cost ~0.4 s.
    """
    h, w = img.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    for corner in (img[0, 0], img[-1, -1]):
        c = corner.astype(np.int16)
        if c.max() - c.min() > tol or tol < c.min() < 255 - tol:
            continue  # neither white nor black: not padding
        diff = cv2.absdiff(img, np.broadcast_to(corner.astype(np.uint8), img.shape).copy())
        pad = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2]) <= tol
        rows = pad.all(axis=1)
        cols = pad.all(axis=0)
        while y0 < y1 - 1 and rows[y0]:
            y0 += 1
        while y1 - 1 > y0 and rows[y1 - 1]:
            y1 -= 1
        while x0 < x1 - 1 and cols[x0]:
            x0 += 1
        while x1 - 1 > x0 and cols[x1 - 1]:
            x1 -= 1
    return x0, y0, x1, y1


def _downscale(pixels: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Shrink to `long_side` (never enlarge); returns the image and the scale used."""
    h, w = pixels.shape[:2]
    s = long_side / max(h, w)
    if s >= 1.0:
        return np.ascontiguousarray(pixels), 1.0
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    img = pixels
    if s < 0.5:
        # INTER_AREA straight from 3600 px costs ~35 ms; a bilinear step to twice the
        # target followed by a 2x2 area average costs ~2 ms and looks the same here.
        img = cv2.resize(img, (tw * 2, th * 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA), s


def _features(img: np.ndarray, p: LocaliserParams) -> np.ndarray:
    """(h, w, 4) float32: smoothed L, a, b and local texture."""
    lab = cv2.cvtColor(img.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
    lum = np.ascontiguousarray(lab[..., 0])
    win = (p.texture_window, p.texture_window)
    mean = cv2.blur(lum, win)
    mean_sq = cv2.blur(lum * lum, win)
    tex = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    feats = np.dstack([lab, tex])
    return cv2.GaussianBlur(feats, (0, 0), p.blur_sigma)


def _border_samples(f: np.ndarray, band: int, weights: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    c = f.shape[2]
    parts = [f[:band], f[-band:], f[band:-band, :band], f[band:-band, -band:]]
    parts = [q.reshape(-1, c) for q in parts]
    w = np.concatenate([np.full(len(q), wt, np.float32) for q, wt in zip(parts, weights)])
    return np.concatenate(parts), w


def _sea_distance(f: np.ndarray, p: LocaliserParams) -> tuple[np.ndarray, np.ndarray]:
    """Normalised distance of every pixel to the nearest sea cluster, and the sea's mean.

    Returns:
        (h, w) float32 distances (RMS over features of per-feature z-scores) and the
        weighted mean feature vector of the sea clusters.
    """
    h, w, c = f.shape
    band = max(1, min(int(round(p.band * min(h, w))), (min(h, w) - 1) // 2))
    samples, weights = _border_samples(f, band, p.edge_weights)
    k = max(1, min(p.clusters, len(samples)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 15, 0.5)
    cv2.setRNGSeed(0)  # deterministic boxes
    _, assign, centres = cv2.kmeans(samples, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    assign = assign.ravel()
    mass = np.bincount(assign, weights=weights, minlength=k)
    flat = f.reshape(-1, c)
    dist_sq = np.full(len(flat), np.inf, np.float32)
    covered, sea_sum = 0.0, np.zeros(c, np.float64)
    for j in np.argsort(-mass):
        members = samples[assign == j]
        if len(members) == 0:
            continue
        spread = np.maximum(members.std(axis=0), _MIN_SPREAD)
        z = (flat - centres[j]) / spread
        dist_sq = np.minimum(dist_sq, np.einsum("ij,ij->i", z, z))
        covered += mass[j]
        sea_sum += mass[j] * centres[j]
        if covered >= p.sea_cover * weights.sum():
            break
    return np.sqrt(dist_sq / c).reshape(h, w), (sea_sum / max(covered, 1e-9)).astype(np.float32)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _score_components(
    mask: np.ndarray, dist: np.ndarray, f: np.ndarray, sea: np.ndarray, p: LocaliserParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label components and score them.

    Returns:
        (stats, scores, labels): cv2 component stats, one score per component (index 0 is
        the background and scores 0) and the label image.
    """
    h, w = mask.shape
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    flat = labels.ravel()
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    safe = np.maximum(area, 1.0)
    # Per-component means in one pass each (medians per component cost ~10x more).
    contrast = np.bincount(flat, dist.ravel(), n) / safe
    lum = np.bincount(flat, f[..., 0].ravel(), n) / safe
    tex = np.bincount(flat, f[..., 3].ravel(), n) / safe
    on_border = np.bincount(
        np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]]), minlength=n
    ).astype(np.float64)
    bw = stats[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    bh = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    solidity = area / np.maximum(bw * bh, 1.0)
    # Zhu et al. 2014 boundary connectivity: the sea or a horizon band runs along the frame,
    # an animal touches it little relative to its size (a fin rising from the bottom edge).
    connectivity = on_border / np.sqrt(safe)
    dx = centroids[:, 0] / w - 0.5
    dy = centroids[:, 1] / h - 0.5
    centre = np.exp(-(dx * dx + dy * dy) / (2 * 0.3**2))  # photographers centre the animal
    # Whitewater and sun glare: brighter than the sea and much rougher than it. Belugas
    # are bright but smooth; grey whales are rough but darker than the sea.
    glare = (lum > sea[0]) & (tex > 1.5 * (sea[3] + 0.5))
    scores = (
        np.sqrt(area / (h * w))
        * np.minimum(contrast, 10.0)
        * centre
        * np.exp(-0.5 * connectivity**2)
        * solidity
        * np.where(glare, p.glare_penalty, 1.0)
    )
    weak = (contrast < p.weak_contrast) & (area < p.weak_area * h * w)
    scores = np.where(weak, scores * 0.01, scores)
    scores = np.where(area < p.min_area * h * w, 0.0, scores)
    scores[0] = 0.0
    return stats, scores, labels


def find_animal(pixels: np.ndarray, params: LocaliserParams = DEFAULT_PARAMS) -> Box:
    """Find the box around the animal in a photo.

    Args:
        pixels: (H, W, 3) uint8 RGB image. A (H, W) grey image is accepted too; other
            dtypes are clipped to 0..255.
        params: tuning knobs; the defaults suit survey photos of cetaceans at sea.

    Returns:
        The box in the coordinates of `pixels`, with a margin of `params.margin` around
        the animal. `whole_image` is True (and the box is the whole photo) when the photo
        is empty or small, looks like a crop already, or nothing convincing was found.
    """
    return _find(pixels, params, None)


def _find(pixels: np.ndarray, params: LocaliserParams, debug: dict | None) -> Box:
    """`find_animal`, optionally filling `debug` with the intermediate maps (for montages)."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"expected (H, W, 3) RGB pixels, got shape {pixels.shape}")
    H, W = pixels.shape[:2]
    if H == 0 or W == 0:
        return _whole(W, H)
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    pixels = pixels[..., :3]

    small, s = _downscale(pixels, params.work_long_side)
    tx0, ty0, tx1, ty1 = _trim_letterbox(small)
    img = np.ascontiguousarray(small[ty0:ty1, tx0:tx1])
    h, w = img.shape[:2]
    if max(h, w) <= params.min_long_side * s or min(h, w) < 16:
        # Already a crop (or too small to say anything): cropping further would only risk
        # cutting off part of the animal.
        return _whole(W, H)
    f = _features(img, params)
    dist, sea = _sea_distance(f, params)
    mask = (dist > params.threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(max(1, round(params.open_frac * max(h, w)))))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(max(1, round(params.close_frac * max(h, w)))))
    stats, scores, labels = _score_components(mask, dist, f, sea, params)
    if debug is not None:
        debug.update(d=dist, mask=mask, img=img, stats=stats, scores=scores)
    best = int(np.argmax(scores))
    best_score = float(scores[best])
    confidence = best_score / (best_score + 0.1)
    if best_score < params.min_score:
        return _whole(W, H, 0.0)

    # Union with strong components next to the winner: fragmented animals (a beluga's
    # back broken by a wave) and fin + back split by a thin line of water.
    bx0, by0 = stats[best, 0], stats[best, 1]
    bx1, by1 = bx0 + stats[best, 2], by0 + stats[best, 3]
    reach = 0.5 * max(bx1 - bx0, by1 - by0)
    for i in np.nonzero(scores >= params.merge_ratio * best_score)[0]:
        x0, y0 = stats[i, 0], stats[i, 1]
        x1, y1 = x0 + stats[i, 2], y0 + stats[i, 3]
        gap_x = max(0, x0 - bx1, bx0 - x1)
        gap_y = max(0, y0 - by1, by0 - y1)
        if max(gap_x, gap_y) <= reach:
            bx0, by0, bx1, by1 = min(bx0, x0), min(by0, y0), max(bx1, x1), max(by1, y1)

    # Hysteresis (as in Canny 1986): grow the box over weaker not-sea pixels connected to
    # the winner. Fins and backs fade into the sea at their edges (trailing edge in
    # shadow, a beluga's flank under a film of water); the strict threshold alone cuts
    # them, and a box that cuts the fin's trailing edge loses the identifying notches.
    # If the weak region leaks into the sea the box grows to the whole image, which is
    # the safe failure.
    weak = (dist > params.low_threshold).astype(np.uint8)
    # A smaller opening than for the seeds: it only has to cut one-pixel bridges into the
    # sea, and the thin parts (fin tip, tail stock, fluke tips) must survive it.
    weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, _disk(max(1, round(params.open_frac * max(h, w) / 2))))
    _, weak_labels, weak_stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    core = labels == best
    for j in np.unique(weak_labels[core]):
        if j == 0:
            continue
        x0, y0 = weak_stats[j, 0], weak_stats[j, 1]
        bx0, by0 = min(bx0, x0), min(by0, y0)
        bx1, by1 = max(bx1, x0 + weak_stats[j, 2]), max(by1, y0 + weak_stats[j, 3])

    mx, my = params.margin * (bx1 - bx0), params.margin * (by1 - by0)
    # Back to the coordinates of `pixels` (the trim offsets are in working pixels).
    x0 = max(0, int(np.floor((bx0 + tx0 - mx) / s)))
    y0 = max(0, int(np.floor((by0 + ty0 - my) / s)))
    x1 = min(W, int(np.ceil((bx1 + tx0 + mx) / s)))
    y1 = min(H, int(np.ceil((by1 + ty0 + my) / s)))
    if (x1 - x0) * (y1 - y0) > params.whole_frac * W * H:
        return _whole(W, H, confidence)
    return Box(x0=x0, y0=y0, x1=x1, y1=y1, confidence=confidence)

