"""Decode uploaded photo bytes into a `Photo`: checked format, bounded size, EXIF applied.

Every failure on hostile or broken input surfaces as `ImageError` with one of the reasons
in `ImageErrorReason`; no Pillow, OS or parsing exception escapes `load_photo`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import pathlib
import struct
from datetime import datetime

import numpy as np
import pillow_heif
from PIL import Image

from embeddings.photo import ImageError, Photo

__all__ = [
    "ACCEPTED_FORMATS",
    "MEDIA_TYPES",
    "load_photo",
    "load_photo_file",
    "media_type",
    "thumbnail_jpeg",
]

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF")
"""Pillow format names `load_photo` decodes; anything else is `unsupported_format`."""

MEDIA_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
}
"""The media type of each of `ACCEPTED_FORMATS`."""

_DEFAULT_MAX_PIXELS = 50_000_000

# Pillow's plugins raise a wide, undocumented set of exceptions on malformed input
# (struct.error from header unpacking, IndexError/KeyError from tables, SyntaxError from
# the JPEG marker parser, RuntimeError from libheif), so all of them mean "corrupted".
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    RuntimeError,
)

# Magic numbers of the accepted formats, used only to tell "a damaged JPEG" (corrupted)
# from "not an image we take" (unsupported) when Pillow cannot even read the header.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 306
_TAG_DATETIME_ORIGINAL = 36867
_GPS_LATITUDE_REF, _GPS_LATITUDE, _GPS_LONGITUDE_REF, _GPS_LONGITUDE = 1, 2, 3, 4

# Same table as PIL.ImageOps.exif_transpose. That helper also re-serialises the EXIF and
# XMP blobs of its copy, which we discard and which has raised on odd EXIF in the past,
# so only the pixel transform is applied here.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_EXIF_DATE_FORMATS = ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S")


@functools.cache
def _register_heif_opener() -> None:
    """Teach Pillow to open HEIF/HEIC; cached so the registration runs once per process."""
    pillow_heif.register_heif_opener()


def load_photo_file(path: pathlib.Path, *, max_pixels: int = _DEFAULT_MAX_PIXELS) -> Photo:
    """Read a photo from disk and decode it with `load_photo`.

    Args:
        path: the image file.
        max_pixels: largest accepted width * height, checked before decoding.

    Returns:
        The decoded photo.

    Raises:
        ImageError: "corrupted_image" if the file is missing or unreadable (the message
            names the path), otherwise whatever `load_photo` raises.
    """
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ImageError("corrupted_image", f"cannot read {path}: {exc.strerror or exc}") from exc
    return load_photo(data, max_pixels=max_pixels)


def load_photo(data: bytes, *, max_pixels: int = _DEFAULT_MAX_PIXELS) -> Photo:
    """Decode an uploaded image into RGB pixels plus its EXIF date and position.

    The header is read first and width * height compared with `max_pixels` before any
    pixel is decoded. Only the first frame of multi-frame files is used. A multi-picture
    JPEG (Pillow's "MPO") is reported as "JPEG". Pillow's own global bomb limit
    (`PIL.Image.MAX_IMAGE_PIXELS`, about 179 million pixels for a hard error) still
    applies on top of `max_pixels`; hitting it is also reported as "too_large".

    Args:
        data: the file's bytes.
        max_pixels: largest accepted width * height.

    Returns:
        The photo: `(H, W, 3) uint8` C-contiguous RGB pixels with EXIF orientation
        applied, the sha256 of `data`, the format name (one of `ACCEPTED_FORMATS`), the
        EXIF capture time and GPS position when present and well formed (else None), and
        `data` itself (`Photo.content`).

    Raises:
        ImageError: "unsupported_format" for empty input, data that is not an image or
            an image format outside `ACCEPTED_FORMATS`; "too_large" above `max_pixels`;
            "corrupted_image" for truncated or undecodable files.
    """
    if not data:
        raise ImageError("unsupported_format", "empty input: 0 bytes, not an image")
    _register_heif_opener()
    sha256 = hashlib.sha256(data).hexdigest()

    with _open(data, max_pixels) as image:
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _pillow_bomb_error(exc, max_pixels) from exc
        except _DECODE_ERRORS as exc:
            raise ImageError(
                "corrupted_image",
                f"{image.format} image cannot be decoded (truncated or damaged): {exc}",
            ) from exc

        exif = _read_exif(image)
        try:
            pixels = _to_rgb_array(_apply_orientation(image, exif))
        except _DECODE_ERRORS as exc:
            raise ImageError(
                "unsupported_format",
                f"{image.format} pixel mode {image.mode!r} cannot be converted to RGB: {exc}",
            ) from exc
        latitude, longitude = _gps_position(exif)
        return Photo(
            pixels=pixels,
            sha256=sha256,
            format="JPEG" if image.format == "MPO" else str(image.format),
            taken_at=_taken_at(exif),
            latitude=latitude,
            longitude=longitude,
            content=bytes(data),
        )


def media_type(data: bytes, format: str | None = None) -> str:
    """The media type of a photo file: from its format name when known (`Photo.format`),
    else from its header as Pillow reads it; "application/octet-stream" when neither
    names an accepted format."""
    if format is None:
        _register_heif_opener()
        try:
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                format = image.format
        except _DECODE_ERRORS:
            format = None
    if format == "MPO":
        format = "JPEG"
    return MEDIA_TYPES.get(format or "", "application/octet-stream")


def thumbnail_jpeg(data: bytes, size: int, *, max_pixels: int = _DEFAULT_MAX_PIXELS) -> bytes:
    """A JPEG thumbnail of a photo file: EXIF orientation applied, long side `size`.

    A photo already smaller than `size` is not enlarged. JPEGs are decoded at a reduced
    scale (Pillow's draft mode), so a thumbnail of a large frame is cheap.

    Args:
        data: the photo file's bytes (any of `ACCEPTED_FORMATS`).
        size: the long side in pixels (>= 1).
        max_pixels: largest accepted width * height, checked before decoding.

    Returns:
        The thumbnail's JPEG bytes.

    Raises:
        ValueError: `size` < 1.
        ImageError: as `load_photo` for data it cannot decode.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    _register_heif_opener()
    with _open(data, max_pixels) as image:
        exif = _read_exif(image)
        try:
            image.draft("RGB", (size, size))
            pixels = _to_rgb_array(_apply_orientation(image, exif))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _pillow_bomb_error(exc, max_pixels) from exc
        except _DECODE_ERRORS as exc:
            raise ImageError(
                "corrupted_image", f"{image.format} image cannot be decoded: {exc}"
            ) from exc
    small = Image.fromarray(pixels)
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _pillow_bomb_error(exc: Exception, max_pixels: int) -> ImageError:
    """Report Pillow's own bomb check (its message carries the pixel count) as too_large."""
    return ImageError(
        "too_large", f"image too large to decode safely: {exc} (max_pixels is {max_pixels})"
    )


def _unopenable(data: bytes) -> ImageError:
    """Explain why Pillow could not open `data` with the accepted formats' decoders."""
    expected = _sniff_accepted_format(data)
    if expected is not None:
        return ImageError(
            "corrupted_image", f"data starts like a {expected} file but its header cannot be read"
        )
    accepted = ", ".join(ACCEPTED_FORMATS)
    return ImageError(
        "unsupported_format", f"{_identify(data)} is not accepted; accepted formats: {accepted}"
    )


def _sniff_accepted_format(data: bytes) -> str | None:
    """Return the accepted format whose magic number `data` starts with, if any."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM") and data[6:10] == b"\0\0\0\0":  # reserved bytes keep "BM..." text out
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def _identify(data: bytes) -> str:
    """Name what `data` is, for the unsupported-format message; never decodes pixels."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            return f"a {other.format} image"
    except Exception:  # noqa: BLE001 - naming the input is best effort; any failure means "unknown"
        pass
    if data.startswith(b"%PDF"):
        return "a PDF document"
    # A multi-byte character cut at the 512-byte mark leaves replacement characters only
    # at the end; one anywhere else means binary data.
    text = data[:512].decode("utf-8", errors="replace").rstrip("\ufffd")
    if text and "\ufffd" not in text and all(c.isprintable() or c.isspace() for c in text):
        return "text (not an image)"
    return f"unrecognised data (first bytes {data[:8].hex(' ')})"


def _read_exif(image: Image.Image) -> Image.Exif | None:
    """Parse the EXIF block; a malformed one is ignored rather than failing the photo."""
    try:
        return image.getexif()
    except _DECODE_ERRORS:
        return None


def _apply_orientation(image: Image.Image, exif: Image.Exif | None) -> Image.Image:
    """Rotate/flip per EXIF Orientation so the pixels are upright (values 2-8)."""
    if exif is None:
        return image
    orientation = exif.get(_TAG_ORIENTATION)
    method = _ORIENTATION_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to a `(H, W, 3) uint8` C-contiguous RGB array.

    Transparent pixels are composited on white. High-bit-depth grayscale is rescaled to
    0-255 rather than clipped.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_uint8(np.asarray(image), mode)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map a `(H, W)` high-bit-depth grayscale array to uint8.

    16-bit data (and 32-bit integers that stay within 16 bits, which is how Pillow holds
    many 16-bit files) is divided by 257 so 65535 maps to 255; floats in [0, 1] are
    scaled by 255; any other range is stretched from its min-max onto 0-255.
    """
    data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if data.size == 0:
        return np.zeros(data.shape, dtype=np.uint8)
    low, high = float(data.min()), float(data.max())
    if mode != "F" and low >= 0 and high <= 65535:
        scaled = data / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = data * 255.0
    elif high > low:
        scaled = (data - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(data)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _taken_at(exif: Image.Exif | None) -> str | None:
    """Return DateTimeOriginal, else DateTime, as ISO 8601; None if absent or malformed."""
    if exif is None:
        return None
    try:
        original = exif.get_ifd(_EXIF_IFD).get(_TAG_DATETIME_ORIGINAL)
    except _DECODE_ERRORS:
        original = None
    return _parse_exif_date(original) or _parse_exif_date(exif.get(_TAG_DATETIME))


def _parse_exif_date(value: object) -> str | None:
    """Parse an EXIF "YYYY:MM:DD HH:MM:SS" value; None for anything else."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 \t\r\n")
    for fmt in _EXIF_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return None


def _gps_position(exif: Image.Exif | None) -> tuple[float | None, float | None]:
    """Return (latitude, longitude) in decimal degrees, or (None, None).

    Both come back together or not at all: a latitude without a longitude cannot place
    a sighting. A missing hemisphere reference counts as malformed, since guessing
    north/east would misplace southern or western sightings.
    """
    if exif is None:
        return None, None
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except _DECODE_ERRORS:
        return None, None
    latitude = _gps_coordinate(
        gps.get(_GPS_LATITUDE), gps.get(_GPS_LATITUDE_REF), ("N", "S"), limit=90.0
    )
    longitude = _gps_coordinate(
        gps.get(_GPS_LONGITUDE), gps.get(_GPS_LONGITUDE_REF), ("E", "W"), limit=180.0
    )
    if latitude is None or longitude is None:
        return None, None
    return latitude, longitude


def _gps_coordinate(
    value: object, ref: object, hemispheres: tuple[str, str], *, limit: float
) -> float | None:
    """Convert EXIF (degrees, minutes, seconds) rationals plus a hemisphere letter.

    Args:
        value: 1 to 3 numbers (degrees, then optional minutes and seconds).
        ref: the hemisphere letter, str or bytes.
        hemispheres: the (positive, negative) letters, e.g. ("N", "S").
        limit: largest valid magnitude in degrees.

    Returns:
        Signed decimal degrees, or None if anything is missing or out of range.
    """
    positive, negative = hemispheres
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", errors="replace")
    if not isinstance(ref, str):
        return None
    ref = ref.strip("\x00 ").upper()
    if ref not in (positive, negative):
        return None
    parts = value if isinstance(value, (tuple, list)) else (value,)
    # EXIF stores coordinates as rationals; text here (a mistyped tag) is malformed even
    # when it happens to parse as a number.
    if not 1 <= len(parts) <= 3 or any(isinstance(part, (str, bytes)) for part in parts):
        return None
    try:
        numbers = [float(part) for part in parts]  # IFDRational, int and float all convert
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(n) and n >= 0 for n in numbers):
        return None
    if any(n >= 60 for n in numbers[1:]):
        return None
    degrees = sum(n / 60**i for i, n in enumerate(numbers))
    if degrees > limit:
        return None
    return -degrees if ref == negative else degrees


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open (not yet decode) a photo's bytes, refusing more than `max_pixels` pixels
    before any pixel is decoded."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Raised inside Image.open (or a warning escalated by a warnings filter) when
        # Pillow's global limit is exceeded; the message carries the pixel count.
        raise _pillow_bomb_error(exc, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise _unopenable(data) from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageError(
            "too_large",
            f"image is {width}x{height} = {width * height} pixels, "
            f"above the limit of {max_pixels} pixels",
        )
    return image
