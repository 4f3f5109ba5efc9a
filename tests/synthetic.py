"""Synthetic "fluke" photos for tests: one random marking pattern per individual.

Real photo-ID images are never copied into the repository (see ../shared/data/README.md),
so tests render their own. Each individual is a fixed random pattern of dark blotches,
irregular patches and scratches on a light, textured background, in the spirit of the
pigmentation and scars that identify a humpback fluke. `perturb` re-photographs a
pattern (rotation, scale, crop, blur, lighting, sensor noise), so two photos of one
individual share markings in a different geometry, while two individuals share none.

Everything is seeded: the same individual and seed always give the same pixels.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "camera_jpeg",
    "encode",
    "fluke",
    "perturb",
    "rolled",
    "sighting",
    "write_folder",
    "write_manifest",
]

WIDTH, HEIGHT = 480, 320


def _rng(*key: object) -> np.random.Generator:
    """A generator seeded by `key`; Python's hash() is salted per process, so not that."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def fluke(individual: int | str, *, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Render the marking pattern of one individual.

    Args:
        individual: any id; ids with equal `str()` give equal patterns, so 7 and "7"
            (a folder name) are the same animal.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        (height, width, 3) uint8 RGB.
    """
    rng = _rng("fluke", str(individual))
    # A smooth shading plus fine texture: no row or column is uniform (the extractor
    # masks uniform borders as letterbox padding) and nothing reaches glare level.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height) * rng.uniform(10, 25)
    texture = cv2.GaussianBlur(rng.normal(0, 6, (height, width)).astype(np.float32), (0, 0), 1.5)
    gray = rng.uniform(195, 215) + ramp + texture

    canvas = np.zeros((height, width), np.float32)
    scale = min(width, height)
    # Spot sizes are log-uniform, as in real pigmentation: many small spots whose
    # neighbourhoods are unique, and a few large blotches.
    for _ in range(int(rng.integers(70, 100))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        major = float(np.exp(rng.uniform(np.log(0.008), np.log(0.06)))) * scale
        axes = (max(1, int(major)), max(1, int(major * rng.uniform(0.3, 1.0))))
        cv2.ellipse(
            canvas,
            centre,
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            float(rng.uniform(60, 150)),
            -1,
        )
    for _ in range(int(rng.integers(10, 16))):  # irregular patches: corners SIFT can describe
        centre = rng.uniform((0, 0), (width, height))
        n = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.015, 0.07, n) * scale
        points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        cv2.fillPoly(canvas, [points.astype(np.int32)], float(rng.uniform(60, 140)))
    for _ in range(int(rng.integers(6, 12))):  # scratches and rake marks
        start = rng.uniform((0, 0), (width, height))
        end = start + rng.normal(0, 0.15 * scale, 2)
        cv2.line(
            canvas,
            tuple(int(v) for v in start),
            tuple(int(v) for v in end),
            float(rng.uniform(50, 110)),
            int(rng.integers(1, 4)),
            cv2.LINE_AA,
        )
    # Overlaps would otherwise add up to black; real spots merge into one darker patch.
    canvas = np.minimum(canvas, 170.0)
    darkening = cv2.GaussianBlur(canvas, (0, 0), 1.0)
    gray = np.clip(gray - darkening, 10, 235)
    tint = rng.uniform(0.9, 1.0, 3)  # slightly bluish/greyish, as at sea
    rgb = gray[:, :, None] * tint[None, None, :]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def rolled(image: np.ndarray, degrees: float) -> np.ndarray:
    """The same photo taken with the camera rolled by `degrees` about its centre; borders
    reflected, as in `perturb`, so no straight fill edge appears."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def perturb(image: np.ndarray, seed: int) -> np.ndarray:
    """Simulate another photograph of the same markings.

    Applies, in order: rotation of up to +-15 degrees and scaling by 0.8-1.2 about a
    jittered centre, a crop keeping 80-100 % of each side, Gaussian blur (sigma up to
    1.2), brightness and contrast changes of up to +-15 %, and mild sensor noise.

    Args:
        image: (H, W, 3) uint8 RGB.
        seed: selects the perturbation; the same seed gives the same output.

    Returns:
        (h, w, 3) uint8 RGB, h <= H and w <= W.
    """
    rng = _rng("perturb", seed)
    height, width = image.shape[:2]
    centre = (
        width / 2 + rng.uniform(-0.05, 0.05) * width,
        height / 2 + rng.uniform(-0.05, 0.05) * height,
    )
    matrix = cv2.getRotationMatrix2D(
        centre, float(rng.uniform(-15, 15)), float(rng.uniform(0.8, 1.2))
    )
    # Reflected borders keep corners textured: a constant fill would be a straight edge
    # shared by every perturbed photo.
    warped = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    crop_w = int(width * rng.uniform(0.8, 1.0))
    crop_h = int(height * rng.uniform(0.8, 1.0))
    x0 = int(rng.integers(0, width - crop_w + 1))
    y0 = int(rng.integers(0, height - crop_h + 1))
    out = warped[y0 : y0 + crop_h, x0 : x0 + crop_w].astype(np.float32)
    sigma = float(rng.uniform(0.0, 1.2))
    if sigma > 0.1:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.85, 1.15)
    out += rng.normal(0, 2.0, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def sighting(individual: int | str, seed: int) -> np.ndarray:
    """A perturbed photo of `individual`; shorthand for `perturb(fluke(individual), seed)`."""
    return perturb(fluke(individual), seed)


def encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """Encode (H, W, 3) uint8 RGB as a file's bytes ("PNG", "JPEG", ... as Pillow names
    them); JPEG at quality 92, as a camera would."""
    buffer = io.BytesIO()
    options = {"quality": 92} if fmt.upper() == "JPEG" else {}
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def camera_jpeg(
    image: np.ndarray,
    *,
    taken_at: datetime | None = None,
    position: tuple[float, float] | None = None,
) -> bytes:
    """Encode as a camera would, with the EXIF a survey photo carries.

    Args:
        image: (H, W, 3) uint8 RGB.
        taken_at: written as DateTimeOriginal.
        position: (latitude, longitude) in decimal degrees, south and west negative;
            written as the GPS tags, in degrees, minutes and seconds.

    Returns:
        JPEG bytes (quality 92).
    """
    exif = Image.Exif()
    if taken_at is not None:
        exif.get_ifd(0x8769)[36867] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    if position is not None:
        latitude, longitude = position
        exif.get_ifd(0x8825).update(
            {
                1: "N" if latitude >= 0 else "S",
                2: _dms(abs(latitude)),
                3: "E" if longitude >= 0 else "W",
                4: _dms(abs(longitude)),
            }
        )
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def _dms(degrees: float) -> tuple[float, float, float]:
    # From whole milliseconds of arc: 57.3 degrees is 57 18' 0", never 57 17' 60".
    total = round(degrees * 3_600_000)
    whole, rest = divmod(total, 3_600_000)
    minutes, millis = divmod(rest, 60_000)
    return float(whole), float(minutes), millis / 1000


def write_folder(
    root: Path, individuals: Iterable[int | str], photos: int = 3, fmt: str = "JPEG"
) -> list[Path]:
    """Write a folder-per-individual tree of perturbed photos.

    Args:
        root: created if missing; gets one sub-folder per individual.
        individuals: the ids; each is also its folder name.
        photos: photos per individual, perturbed with seeds 0..photos-1.
        fmt: the Pillow format name; the file extension follows it.

    Returns:
        The written files, in writing order.
    """
    suffix = {"JPEG": ".jpg", "PNG": ".png"}.get(fmt.upper(), "." + fmt.lower())
    written = []
    for individual in individuals:
        folder = Path(root, str(individual))
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(photos):
            path = folder / f"{individual}_{seed}{suffix}"
            path.write_bytes(encode(sighting(individual, seed), fmt))
            written.append(path)
    return written


def write_manifest(path: Path, rows: Iterable[tuple[str, str, str]]) -> Path:
    """Write a manifest CSV (header `path,individual_id,species,source`).

    Args:
        path: the CSV file to write.
        rows: (relative path, individual id, species) triples, written as given.

    Returns:
        `path`.
    """
    lines = ["path,individual_id,species,source"]
    lines += [f"{p},{i},{s},synthetic" for p, i, s in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)
