"""Tests for embeddings.images: formats, limits, orientation, EXIF date and GPS, pixel modes.

Every image is generated here; nothing is read from the shared data folder.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import struct
import warnings
import zlib
from typing import Literal

import numpy as np
import pillow_heif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps, TiffImagePlugin

from embeddings.images import ACCEPTED_FORMATS, load_photo, load_photo_file
from embeddings.photo import ImageError, Photo

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
WIDTH, HEIGHT = 40, 20
MARK = 8  # side of the red square in the top-left corner
# JPEG/WEBP/HEIF subsample chroma, so colours near the square's edge drift; red and blue
# are still about 255 apart on two channels, so this cannot mistake one for the other.
LOSSY_TOLERANCE = 40

HEIF_CAN_ENCODE = bool(pillow_heif.libheif_info()["HEIF"])
NEEDS_HEIF_ENCODER = pytest.mark.skipif(not HEIF_CAN_ENCODE, reason="libheif has no HEVC encoder")
Rational = TiffImagePlugin.IFDRational


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _marked_image() -> Image.Image:
    """A WIDTHxHEIGHT blue image with a MARKxMARK red square at the top-left corner."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BLUE)
    image.paste(RED, (0, 0, MARK, MARK))
    return image


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + crc


def _png(
    width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, rows: bytes | None = None
) -> bytes:
    """Hand-build a PNG; with rows=None it has a header and no pixel data at all."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    if rows is not None:
        data += _png_chunk(b"IDAT", zlib.compress(rows))
    return data + _png_chunk(b"IEND", b"")


def _jpeg_with_exif(exif: Image.Exif | bytes) -> bytes:
    return _encode(Image.new("RGB", (8, 8), BLUE), "JPEG", exif=exif)


def _assert_rgb_photo(photo: Photo, height: int, width: int) -> None:
    assert photo.pixels.shape == (height, width, 3)
    assert photo.pixels.dtype == np.uint8
    assert photo.pixels.flags["C_CONTIGUOUS"]
    assert (photo.height, photo.width) == (height, width)


# --- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        "JPEG",
        "PNG",
        "WEBP",
        "BMP",
        "TIFF",
        pytest.param("HEIF", marks=NEEDS_HEIF_ENCODER),
    ],
)
def test_round_trip_accepted_format(fmt: str) -> None:
    data = _encode(_marked_image(), fmt)

    photo = load_photo(data)

    _assert_rgb_photo(photo, HEIGHT, WIDTH)
    assert photo.format == fmt
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    # Lossy codecs shift colours a little and blur the square's edge, so compare the
    # square's interior and a far corner with a tolerance.
    inner = photo.pixels[2 : MARK - 2, 2 : MARK - 2].astype(int)
    assert np.abs(inner - np.array(RED)).max() <= LOSSY_TOLERANCE
    far = photo.pixels[HEIGHT - 4 :, WIDTH - 4 :].astype(int)
    assert np.abs(far - np.array(BLUE)).max() <= LOSSY_TOLERANCE
    assert (photo.taken_at, photo.latitude, photo.longitude) == (None, None, None)


def test_accepted_formats_lists_the_six_supported_formats() -> None:
    assert set(ACCEPTED_FORMATS) == {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF"}


def test_multi_picture_jpeg_is_reported_as_jpeg_and_uses_first_frame() -> None:
    first = Image.new("RGB", (16, 8), RED)
    second = Image.new("RGB", (4, 4), BLUE)
    data = _encode(first, "MPO", save_all=True, append_images=[second])

    photo = load_photo(data)

    assert photo.format == "JPEG"
    _assert_rgb_photo(photo, 8, 16)
    assert np.abs(photo.pixels.astype(int) - np.array(RED)).max() <= LOSSY_TOLERANCE


@NEEDS_HEIF_ENCODER
def test_heif_opener_registration_is_idempotent() -> None:
    data = _encode(_marked_image(), "HEIF")
    load_photo(data)
    load_photo(data)
    assert Image.ID.count("HEIF") == 1


def test_sha256_is_of_the_raw_bytes_not_the_pixels() -> None:
    image = _marked_image()
    plain = _encode(image, "PNG")
    compressed = _encode(image, "PNG", compress_level=9, optimize=True)
    assert plain != compressed

    first, second = load_photo(plain), load_photo(compressed)

    assert np.array_equal(first.pixels, second.pixels)
    assert first.sha256 != second.sha256
    assert second.sha256 == hashlib.sha256(compressed).hexdigest()


# --- rejected input --------------------------------------------------------------------

_RANDOM = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
_JPEG = _encode(_marked_image(), "JPEG")
_PNG = _encode(_marked_image(), "PNG")


@pytest.mark.parametrize(
    ("data", "reason", "fragment"),
    [
        pytest.param(b"", "unsupported_format", "empty", id="empty"),
        pytest.param(_RANDOM, "unsupported_format", "unrecognised data", id="random-bytes"),
        pytest.param(_encode(_marked_image(), "GIF"), "unsupported_format", "GIF", id="gif"),
        pytest.param(_encode(_marked_image(), "PPM"), "unsupported_format", "PPM", id="ppm"),
        pytest.param(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "unsupported_format", "PDF", id="pdf"),
        pytest.param(b"whale sighting, 3 adults\n", "unsupported_format", "text", id="text"),
        pytest.param(_JPEG[: len(_JPEG) // 2], "corrupted_image", "JPEG", id="truncated-jpeg"),
        pytest.param(_JPEG[:20], "corrupted_image", "JPEG", id="jpeg-header-only"),
        pytest.param(_PNG[: len(_PNG) - 30], "corrupted_image", "PNG", id="truncated-png"),
        pytest.param(_png(100, 100), "corrupted_image", "PNG", id="png-without-pixel-data"),
    ],
)
def test_rejects_with_reason(data: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(ImageError) as caught:
        load_photo(data)

    assert caught.value.reason == reason
    assert fragment in caught.value.message
    assert str(caught.value) == caught.value.message


def test_unsupported_message_lists_accepted_formats() -> None:
    with pytest.raises(ImageError) as caught:
        load_photo(_encode(_marked_image(), "GIF"))

    assert "JPEG" in caught.value.message
    assert "HEIF" in caught.value.message


@NEEDS_HEIF_ENCODER
def test_truncated_heif_is_corrupted() -> None:
    data = _encode(_marked_image(), "HEIF")

    with pytest.raises(ImageError) as caught:
        load_photo(data[: len(data) // 2])

    assert caught.value.reason == "corrupted_image"


# --- decompression bombs ---------------------------------------------------------------


def test_limit_is_checked_from_the_header_before_decoding() -> None:
    # The file has no pixel data: decoding it would fail as corrupted (see the
    # png-without-pixel-data case), so "too_large" proves the header check ran first.
    with pytest.raises(ImageError) as caught:
        load_photo(_png(8000, 8000))

    assert caught.value.reason == "too_large"
    assert "64000000" in caught.value.message
    assert "50000000" in caught.value.message


@pytest.mark.parametrize("action", ["ignore", "error"])
def test_pillow_bomb_warning_becomes_too_large(action: Literal["ignore", "error"]) -> None:
    # 100 million pixels: above Pillow's warning threshold, below its hard error. With
    # "error" the warning is raised inside Image.open and must still map to too_large.
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        with pytest.raises(ImageError) as caught:
            load_photo(_png(10_000, 10_000))

    assert caught.value.reason == "too_large"
    assert "100000000" in caught.value.message


def test_pillow_bomb_error_becomes_too_large_even_with_a_higher_limit() -> None:
    # 10 billion pixels trips Pillow's own hard limit inside Image.open.
    with pytest.raises(ImageError) as caught:
        load_photo(_png(100_000, 100_000), max_pixels=10**12)

    assert caught.value.reason == "too_large"
    assert "10000000000" in caught.value.message


@pytest.mark.parametrize(
    ("max_pixels", "accepted"), [(WIDTH * HEIGHT - 1, False), (WIDTH * HEIGHT, True)]
)
def test_max_pixels_boundary(max_pixels: int, accepted: bool) -> None:
    data = _encode(_marked_image(), "PNG")

    if accepted:
        assert load_photo(data, max_pixels=max_pixels).pixels.shape == (HEIGHT, WIDTH, 3)
    else:
        with pytest.raises(ImageError) as caught:
            load_photo(data, max_pixels=max_pixels)
        assert caught.value.reason == "too_large"
        assert f"{WIDTH}x{HEIGHT} = {WIDTH * HEIGHT} pixels" in caught.value.message


# --- orientation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        "JPEG",
        "PNG",
        "WEBP",
        "TIFF",
        pytest.param("HEIF", marks=NEEDS_HEIF_ENCODER),
    ],
)
def test_orientation_6_rotates_clockwise(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _encode(_marked_image(), fmt, exif=exif.tobytes())

    photo = load_photo(data)

    # Landscape becomes portrait, and the top-left red square moves to the top-right.
    _assert_rgb_photo(photo, WIDTH, HEIGHT)
    top_right = photo.pixels[2 : MARK - 2, HEIGHT - MARK + 2 : HEIGHT - 2].astype(int)
    assert np.abs(top_right - np.array(RED)).max() <= LOSSY_TOLERANCE
    top_left = photo.pixels[2 : MARK - 2, 2 : MARK - 2].astype(int)
    assert np.abs(top_left - np.array(BLUE)).max() <= LOSSY_TOLERANCE


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_reference(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(_marked_image(), "PNG", exif=exif.tobytes())
    with Image.open(io.BytesIO(data)) as original:
        expected = np.asarray(ImageOps.exif_transpose(original).convert("RGB"))

    photo = load_photo(data)

    assert np.array_equal(photo.pixels, expected)
    assert photo.pixels.shape == ((HEIGHT, WIDTH, 3) if orientation <= 4 else (WIDTH, HEIGHT, 3))


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_leaves_pixels_alone(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = _marked_image()

    photo = load_photo(_encode(image, "PNG", exif=exif.tobytes()))

    assert np.array_equal(photo.pixels, np.asarray(image))


# --- EXIF date -------------------------------------------------------------------------


def _exif(
    *, original: object = None, modified: object = None, gps: dict[int, object] | None = None
) -> Image.Exif:
    exif = Image.Exif()
    if modified is not None:
        exif[306] = modified
    if original is not None:
        exif.get_ifd(0x8769)[36867] = original
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    return exif


@pytest.mark.parametrize(
    ("original", "modified", "expected"),
    [
        pytest.param(None, None, None, id="none"),
        pytest.param("2019:07:04 13:05:00", None, "2019-07-04T13:05:00", id="original"),
        pytest.param(None, "2020:01:02 03:04:05", "2020-01-02T03:04:05", id="datetime-fallback"),
        pytest.param(
            "2019:07:04 13:05:00", "2020:01:02 03:04:05", "2019-07-04T13:05:00", id="original-wins"
        ),
        pytest.param(
            "0000:00:00 00:00:00", "2020:01:02 03:04:05", "2020-01-02T03:04:05", id="zero-original"
        ),
        pytest.param("0000:00:00 00:00:00", None, None, id="zero-date"),
        pytest.param("2019:13:40 25:61:00", None, None, id="impossible-date"),
        pytest.param("yesterday", "    ", None, id="garbage"),
        pytest.param("2019:07:04", None, None, id="date-without-time"),
        pytest.param("2019:07:04 13:05:00\x00", None, "2019-07-04T13:05:00", id="trailing-nul"),
        pytest.param("2019-07-04 13:05:00", None, "2019-07-04T13:05:00", id="dashed-date"),
    ],
)
def test_taken_at(original: str | None, modified: str | None, expected: str | None) -> None:
    photo = load_photo(_jpeg_with_exif(_exif(original=original, modified=modified)))

    assert photo.taken_at == expected


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_taken_at_from_other_formats(fmt: str) -> None:
    exif = _exif(original="2018:02:03 04:05:06")

    photo = load_photo(_encode(_marked_image(), fmt, exif=exif.tobytes()))

    assert photo.taken_at == "2018-02-03T04:05:06"


def test_malformed_exif_block_keeps_the_pixels_and_drops_metadata() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns "Corrupt EXIF data"
        photo = load_photo(_jpeg_with_exif(b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage"))

    _assert_rgb_photo(photo, 8, 8)
    assert (photo.taken_at, photo.latitude, photo.longitude) == (None, None, None)


# --- EXIF GPS --------------------------------------------------------------------------

_SYDNEY_LAT = (Rational(33, 1), Rational(51, 1), Rational(3549, 100))
_SYDNEY_LON = (Rational(151, 1), Rational(12, 1), Rational(3, 10))
_SYDNEY = (-(33 + 51 / 60 + 35.49 / 3600), 151 + 12 / 60 + 0.3 / 3600)


def _gps(lat_ref: object, lat: object, lon_ref: object, lon: object) -> dict[int, object]:
    """A GPS IFD; None leaves a tag out."""
    tags = {1: lat_ref, 2: lat, 3: lon_ref, 4: lon}
    return {tag: value for tag, value in tags.items() if value is not None}


@pytest.mark.parametrize(
    ("gps", "expected"),
    [
        pytest.param({}, (None, None), id="empty-ifd"),
        pytest.param(_gps("S", _SYDNEY_LAT, "E", _SYDNEY_LON), _SYDNEY, id="south-east-rationals"),
        pytest.param(
            _gps("N", (10, 30, 0), "W", (20, 15, 36)),
            (10.5, -(20 + 15 / 60 + 36 / 3600)),
            id="north-west",
        ),
        pytest.param(_gps("N", (10.5,), "E", 20.25), (10.5, 20.25), id="decimal-degrees"),
        pytest.param(_gps("S", (0, 0, 0), "W", (0, 0, 0)), (0.0, 0.0), id="zero"),
        pytest.param(_gps("N", (90, 0, 0), "W", (180, 0, 0)), (90.0, -180.0), id="extremes"),
        pytest.param(_gps(None, (10, 30, 0), "E", (20, 15, 0)), (None, None), id="missing-lat-ref"),
        pytest.param(_gps("N", (10, 30, 0), None, None), (None, None), id="latitude-only"),
        pytest.param(_gps("X", (10, 30, 0), "E", (20, 15, 0)), (None, None), id="bad-ref"),
        pytest.param(_gps("N", (91, 0, 0), "E", (20, 0, 0)), (None, None), id="latitude-over-90"),
        pytest.param(
            _gps("N", (10, 0, 0), "E", (180, 0, 1)), (None, None), id="longitude-over-180"
        ),
        pytest.param(_gps("N", (10, 60, 0), "E", (20, 0, 0)), (None, None), id="minutes-60"),
        pytest.param(
            _gps("N", (Rational(1, 0), 0, 0), "E", (20, 0, 0)), (None, None), id="zero-denominator"
        ),
        pytest.param(_gps("N", (1, 2, 3, 4), "E", (20, 0, 0)), (None, None), id="four-components"),
    ],
)
def test_gps_position(gps: dict[int, object], expected: tuple[float | None, float | None]) -> None:
    photo = load_photo(_jpeg_with_exif(_exif(gps=gps)))

    if expected[0] is None:
        assert (photo.latitude, photo.longitude) == (None, None)
    else:
        assert photo.latitude == pytest.approx(expected[0], abs=1e-9)
        assert photo.longitude == pytest.approx(expected[1], abs=1e-9)


def _raw_gps_exif(entries: list[tuple[int, int, bytes]]) -> bytes:
    """Big-endian EXIF whose GPS IFD holds (tag, TIFF type, value bytes) exactly as given.

    Pillow's writer coerces values to each tag's standard type, so a GPS tag stored with
    the wrong type (as some broken writers do) has to be laid out by hand.
    """
    sizes = {2: 1, 5: 8}  # ASCII, RATIONAL
    gps_offset = 8 + 2 + 12 + 4
    data_offset = gps_offset + 2 + 12 * len(entries) + 4
    ifd0 = struct.pack(">H", 1) + struct.pack(">HHII", 0x8825, 4, 1, gps_offset) + b"\0\0\0\0"
    gps, extra = struct.pack(">H", len(entries)), b""
    for tag, kind, value in entries:
        count = len(value) // sizes[kind]
        if len(value) <= 4:
            gps += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            gps += struct.pack(">HHII", tag, kind, count, data_offset + len(extra))
            extra += value
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd0 + gps + b"\0\0\0\0" + extra


def _rationals(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack(">II", num, den) for num, den in pairs)


@pytest.mark.parametrize(
    ("latitude", "expected"),
    [
        pytest.param((5, _rationals((10, 1), (30, 1), (0, 1))), (10.5, 20.0), id="raw-rationals"),
        pytest.param((2, b"ten degrees\0"), (None, None), id="latitude-as-text"),
        pytest.param((2, b"12.5\0"), (None, None), id="latitude-as-number-text"),
        pytest.param((5, _rationals((10, 0), (0, 1), (0, 1))), (None, None), id="zero-denominator"),
    ],
)
def test_gps_with_hand_written_types(
    latitude: tuple[int, bytes], expected: tuple[float | None, float | None]
) -> None:
    kind, value = latitude
    longitude = _rationals((20, 1), (0, 1), (0, 1))
    exif = _raw_gps_exif([(1, 2, b"N\0"), (2, kind, value), (3, 2, b"E\0"), (4, 5, longitude)])

    photo = load_photo(_jpeg_with_exif(exif))

    assert (photo.latitude, photo.longitude) == expected


def test_gps_and_date_together() -> None:
    exif = _exif(original="2021:08:09 10:11:12", gps=_gps("S", _SYDNEY_LAT, "E", _SYDNEY_LON))

    photo = load_photo(_jpeg_with_exif(exif))

    assert photo.taken_at == "2021-08-09T10:11:12"
    assert photo.latitude == pytest.approx(_SYDNEY[0])
    assert photo.longitude == pytest.approx(_SYDNEY[1])


# --- pixel modes -----------------------------------------------------------------------


def _flat(mode: str, color: object, fmt: str = "PNG", **options: object) -> bytes:
    """A 2x1 image of one colour in `mode`, encoded as `fmt`."""
    return _encode(Image.new(mode, (2, 1), color), fmt, **options)


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (4, 1), 0)
    image.putpalette([10, 20, 30] + [200, 100, 50] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 1)
    return _encode(image, "PNG", transparency=0)


def _palette_opaque() -> bytes:
    image = Image.new("P", (2, 1), 0)
    image.putpalette([10, 20, 30] + [200, 100, 50] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 1)
    return _encode(image, "PNG")


def _gray16_png() -> bytes:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    return _encode(Image.fromarray(values), "PNG")


def _rgb16_png() -> bytes:
    # Pillow cannot write 48-bit PNG, so build one: filter byte 0, then big-endian RGB.
    pixels = np.array([[[0xFFFF, 0x8080, 0x0000], [0x0101, 0x0000, 0xFFFF]]], dtype=">u2")
    return _png(2, 1, bit_depth=16, color_type=2, rows=b"\x00" + pixels.tobytes())


def _int32_tiff() -> bytes:
    values = np.array([[0, 257, 65535]], dtype=np.int32)
    return _encode(Image.fromarray(values, "I"), "TIFF")


def _wide_int32_tiff() -> bytes:
    values = np.array([[-1000, 0, 1000]], dtype=np.int32)
    return _encode(Image.fromarray(values, "I"), "TIFF")


def _float_tiff() -> bytes:
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    return _encode(Image.fromarray(values, "F"), "TIFF")


@pytest.mark.parametrize(
    ("data", "expected_row"),
    [
        pytest.param(_flat("L", 100), [(100, 100, 100)] * 2, id="L"),
        pytest.param(_flat("1", 1, "BMP"), [WHITE] * 2, id="1-bit"),
        pytest.param(_flat("LA", (0, 0)), [WHITE] * 2, id="LA-transparent"),
        pytest.param(_flat("LA", (40, 255)), [(40, 40, 40)] * 2, id="LA-opaque"),
        pytest.param(_flat("RGBA", (0, 0, 0, 0)), [WHITE] * 2, id="RGBA-transparent"),
        pytest.param(_flat("RGBA", (0, 0, 0, 128)), [(127, 127, 127)] * 2, id="RGBA-half"),
        pytest.param(
            _flat("RGBA", (9, 99, 199, 255), "WEBP", lossless=True),
            [(9, 99, 199)] * 2,
            id="RGBA-webp",
        ),
        pytest.param(
            _palette_with_transparency(), [(200, 100, 50)] + [WHITE] * 3, id="P-transparency"
        ),
        pytest.param(_palette_opaque(), [(200, 100, 50), (10, 20, 30)], id="P-opaque"),
        pytest.param(_flat("CMYK", (0, 255, 255, 0), "TIFF"), [RED] * 2, id="CMYK-tiff"),
        pytest.param(_gray16_png(), [(0, 0, 0), (1, 1, 1), (128, 128, 128), WHITE], id="I;16-png"),
        pytest.param(_rgb16_png(), [(255, 128, 0), (1, 0, 255)], id="RGB-16bit-png"),
        pytest.param(_int32_tiff(), [(0, 0, 0), (1, 1, 1), (255, 255, 255)], id="I-tiff"),
        pytest.param(_wide_int32_tiff(), [(0, 0, 0), (128, 128, 128), WHITE], id="I-tiff-signed"),
        pytest.param(_float_tiff(), [(0, 0, 0), (128, 128, 128), (255, 255, 255)], id="F-tiff"),
    ],
)
def test_modes_convert_to_rgb(data: bytes, expected_row: list[tuple[int, int, int]]) -> None:
    photo = load_photo(data)

    _assert_rgb_photo(photo, 1, len(expected_row))
    assert photo.pixels[0].tolist() == [list(rgb) for rgb in expected_row]


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    photo = load_photo(_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))

    _assert_rgb_photo(photo, 16, 16)
    assert np.abs(photo.pixels.astype(int) - np.array(RED)).max() <= LOSSY_TOLERANCE


# --- files -----------------------------------------------------------------------------


def test_load_photo_file_round_trip(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fluke.png"
    data = _encode(_marked_image(), "PNG")
    path.write_bytes(data)

    photo = load_photo_file(path, max_pixels=WIDTH * HEIGHT)

    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    assert np.array_equal(photo.pixels, np.asarray(_marked_image()))


def test_load_photo_file_passes_the_limit_on(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fluke.png"
    path.write_bytes(_encode(_marked_image(), "PNG"))

    with pytest.raises(ImageError) as caught:
        load_photo_file(path, max_pixels=10)

    assert caught.value.reason == "too_large"


@pytest.mark.parametrize("name", ["missing.jpg", ""])
def test_load_photo_file_unreadable_path(tmp_path: pathlib.Path, name: str) -> None:
    path = tmp_path / name  # "" is the directory itself

    with pytest.raises(ImageError) as caught:
        load_photo_file(path)

    assert caught.value.reason == "corrupted_image"
    assert str(path) in caught.value.message


# --- robustness ------------------------------------------------------------------------


def _check_outcome(data: bytes) -> None:
    """Either a well-formed photo or an ImageError; any other exception fails the test."""
    try:
        photo = load_photo(data, max_pixels=1_000_000)
    except ImageError as exc:
        assert exc.reason in ("corrupted_image", "unsupported_format", "too_large")
        assert exc.message
    else:
        assert photo.pixels.ndim == 3
        assert photo.pixels.shape[2] == 3
        assert photo.pixels.dtype == np.uint8


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_image_error(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_outcome(data)


_SEED_EXIF = _exif(original="2019:07:04 13:05:00", gps=_gps("S", _SYDNEY_LAT, "E", _SYDNEY_LON))
_SEEDS = {
    fmt: _encode(_marked_image(), fmt, exif=_SEED_EXIF.tobytes())
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF")
}
_SEEDS["BMP"] = _encode(_marked_image(), "BMP")


@_FUZZ
@given(
    st.sampled_from(sorted(_SEEDS)),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    st.one_of(st.none(), st.integers(min_value=0)),
)
def test_damaged_images_only_raise_image_error(
    fmt: str, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(_SEEDS[fmt])
    for position, value in flips:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_outcome(bytes(data))
