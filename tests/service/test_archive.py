"""Reading ZIP uploads in memory: limits, bombs, nested and damaged entries, odd names."""

from __future__ import annotations

import copy
import gzip
import io
import random
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import IO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.archive import ArchiveEntry, ArchiveError, ArchiveLimits, read_archive

LIMITS = ArchiveLimits(
    max_entries=10, max_total_bytes=1_000_000, max_entry_bytes=100_000, max_ratio=200
)
# Bytes that barely compress, like a real photo's; seeded, so that no run starts them
# with an archive's magic number by chance.
PHOTO = random.Random(0).randbytes(5_000)

# Offsets of header fields in a central directory record.
VERSION_NEEDED, FLAGS, METHOD, COMPRESSED, UNCOMPRESSED = 6, 8, 10, 20, 24


def make_zip(files: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, content in files:
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, content)
    return buf.getvalue()


def patch_headers(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field of every local and central header (single-entry archives).

    `offset` is the field's offset in the central header; the local header has the same
    fields 2 bytes earlier (it lacks "version made by").
    """
    out = bytearray(data)
    size = struct.calcsize(fmt)
    for signature, shift in ((b"PK\x03\x04", -2), (b"PK\x01\x02", 0)):
        at = out.index(signature) + offset + shift
        out[at : at + size] = struct.pack(fmt, value)
    return bytes(out)


def read_all(data: bytes, limits: ArchiveLimits = LIMITS) -> list[ArchiveEntry]:
    return list(read_archive(data, limits))


def test_empty_zip_yields_nothing() -> None:
    assert read_all(make_zip([])) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a zip at all",
        PHOTO,
        b"PK\x03\x04" + PHOTO,
        make_zip([("a.jpg", PHOTO)])[:-10],
        # "Version needed to extract" 25.4, which zipfile does not implement.
        patch_headers(make_zip([("a.jpg", PHOTO)]), VERSION_NEEDED, "<H", 254),
    ],
)
def test_not_a_zip_is_refused_at_call_time(data: bytes) -> None:
    with pytest.raises(ArchiveError) as info:
        read_archive(data, LIMITS)

    assert info.value.reason == "not_a_zip"


def test_files_come_back_in_archive_order_with_their_bytes() -> None:
    second = random.Random(1).randbytes(300)
    data = make_zip([("b/IMG_2.jpg", PHOTO), ("a\\IMG_1.jpg", second), ("top.png", b"")])

    entries = read_all(data)

    assert [(e.name, e.path) for e in entries] == [
        ("IMG_2.jpg", "b/IMG_2.jpg"),
        ("IMG_1.jpg", "a\\IMG_1.jpg"),
        ("top.png", "top.png"),
    ]
    assert [e.content for e in entries] == [PHOTO, second, b""]
    assert all(e.reason is None and e.detail is None for e in entries)


def test_directories_and_macos_metadata_are_skipped() -> None:
    data = make_zip(
        [
            ("survey/", b""),
            ("survey/HW-1.jpg", PHOTO),
            ("__MACOSX/", b""),
            ("__MACOSX/survey/._HW-1.jpg", b"\x00\x05\x16\x07"),
            ("survey/._HW-1.jpg", b"\x00\x05\x16\x07"),
            ("survey/.DS_Store", b"Bud1"),
        ]
    )

    assert [e.path for e in read_all(data)] == ["survey/HW-1.jpg"]
    # Counted before anything is read: what a batch announces as its total.
    assert len(read_archive(data, LIMITS)) == 1


def test_traversal_names_are_only_reported_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_zip([("../../etc/passwd", b"root:x:0:0"), ("/abs/evil.jpg", PHOTO)])

    entries = read_all(data)

    assert [(e.name, e.path) for e in entries] == [
        ("passwd", "../../etc/passwd"),
        ("evil.jpg", "/abs/evil.jpg"),
    ]
    assert entries[0].content == b"root:x:0:0"
    assert list(tmp_path.iterdir()) == []


def test_too_many_files_is_refused_but_skipped_entries_do_not_count() -> None:
    limits = ArchiveLimits(
        max_entries=2, max_total_bytes=1_000_000, max_entry_bytes=100_000, max_ratio=200
    )
    two = [("1.jpg", PHOTO), ("2.jpg", PHOTO), ("d/", b""), ("__MACOSX/._1.jpg", b"x")]

    assert len(read_all(make_zip(two), limits)) == 2
    with pytest.raises(ArchiveError) as info:
        read_archive(make_zip([*two, ("3.jpg", PHOTO)]), limits)
    assert info.value.reason == "too_many_entries"
    assert "3 files" in str(info.value)


def test_declared_total_above_the_limit_is_refused_before_reading() -> None:
    limits = ArchiveLimits(
        max_entries=10, max_total_bytes=12_000, max_entry_bytes=10_000, max_ratio=200
    )
    ok = make_zip([("1.jpg", PHOTO), ("2.jpg", PHOTO[:7_000])])
    too_much = make_zip([("1.jpg", PHOTO), ("2.jpg", PHOTO), ("3.jpg", PHOTO)])

    assert [e.reason for e in read_all(ok, limits)] == [None, None]
    with pytest.raises(ArchiveError) as info:
        read_archive(too_much, limits)
    assert info.value.reason == "too_large"


def test_an_entry_declared_too_large_is_refused_alone() -> None:
    limits = ArchiveLimits(
        max_entries=10, max_total_bytes=6_000, max_entry_bytes=5_000, max_ratio=200
    )
    data = make_zip([("big.jpg", PHOTO + b"x"), ("ok.jpg", PHOTO)])

    big, ok = read_all(data, limits)

    assert (big.reason, big.content) == ("too_large", None)
    assert "5001" in (big.detail or "")
    assert (ok.reason, ok.content) == (None, PHOTO)


def test_zip_bomb_is_stopped_by_the_ratio_guard() -> None:
    limits = ArchiveLimits(
        max_entries=10,
        max_total_bytes=50_000_000,
        max_entry_bytes=20_000_000,
        max_ratio=200,
    )
    data = make_zip([("bomb.jpg", bytes(10_000_000)), ("ok.jpg", PHOTO)])
    assert len(data) < 50_000

    bomb, ok = read_all(data, limits)

    assert (bomb.name, bomb.reason, bomb.content) == ("bomb.jpg", "too_large", None)
    assert "compression ratio above 200" in (bomb.detail or "")
    assert ok.content == PHOTO


def test_ratio_at_the_limit_is_accepted() -> None:
    content = bytes(1_000)
    data = make_zip([("zeros.bin", content)])
    compressed = zipfile.ZipFile(io.BytesIO(data)).infolist()[0].compress_size
    ratio = len(content) / compressed

    def limits(max_ratio: float) -> ArchiveLimits:
        return ArchiveLimits(
            max_entries=1, max_total_bytes=10_000, max_entry_bytes=10_000, max_ratio=max_ratio
        )

    assert read_all(data, limits(ratio))[0].content == content
    assert read_all(data, limits(ratio * 0.99))[0].reason == "too_large"


def test_a_header_that_understates_the_size_does_not_let_more_bytes_through() -> None:
    honest = make_zip([("liar.jpg", bytes(1_000_000))])
    # Central and local headers both claim 1000 bytes for a 1 MB stream.
    data = patch_headers(honest, UNCOMPRESSED, "<I", 1_000)
    limits = ArchiveLimits(
        max_entries=1, max_total_bytes=2_000, max_entry_bytes=2_000, max_ratio=1e9
    )

    [entry] = read_all(data, limits)

    assert entry.content is None
    assert entry.reason == "corrupted_image"
    assert "CRC" in (entry.detail or "")


def test_total_of_bytes_actually_read_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile itself stops at the declared size, so to reach the running total the
    # central directory as seen by the reader declares nothing while the real sizes are
    # used for decompression.
    data = make_zip([("1.jpg", PHOTO), ("2.jpg", PHOTO)])
    limits = ArchiveLimits(
        max_entries=10, max_total_bytes=8_000, max_entry_bytes=10_000, max_ratio=200
    )
    real_infolist, real_open = zipfile.ZipFile.infolist, zipfile.ZipFile.open

    def understated(self: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
        infos = [copy.copy(info) for info in real_infolist(self)]
        for info in infos:
            info.file_size = 0
        return infos

    def true_size(self: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
        return real_open(self, self.getinfo(info.filename))

    monkeypatch.setattr(zipfile.ZipFile, "infolist", understated)
    monkeypatch.setattr(zipfile.ZipFile, "open", true_size)
    entries = read_archive(data, limits)

    assert next(entries).content == PHOTO
    with pytest.raises(ArchiveError) as info:
        next(entries)
    assert info.value.reason == "too_large"


def test_crc_error_is_a_corrupted_entry_and_the_rest_is_read() -> None:
    payload = b"hello payload " * 100
    good = make_zip([("bad.jpg", payload), ("good.jpg", PHOTO)], zipfile.ZIP_STORED)
    data = good.replace(b"hello payload hello", b"jello payload hello", 1)
    assert data != good

    bad, ok = read_all(data)

    assert (bad.name, bad.reason, bad.content) == ("bad.jpg", "corrupted_image", None)
    assert "CRC" in (bad.detail or "")
    assert ok.content == PHOTO


def test_truncated_compressed_stream_is_a_corrupted_entry() -> None:
    honest = make_zip([("cut.jpg", PHOTO)])
    data = patch_headers(honest, COMPRESSED, "<I", 1_000)

    [entry] = read_all(data)

    assert (entry.reason, entry.content) == ("corrupted_image", None)


def test_encrypted_entry_is_reported_not_read() -> None:
    data = patch_headers(make_zip([("secret.jpg", PHOTO)]), FLAGS, "<H", 0x1)

    [entry] = read_all(data)

    assert (entry.name, entry.reason, entry.content) == ("secret.jpg", "encrypted", None)


def test_unknown_compression_method_is_unsupported() -> None:
    data = patch_headers(make_zip([("odd.jpg", PHOTO)]), METHOD, "<H", 77)

    [entry] = read_all(data)

    assert (entry.reason, entry.content) == ("unsupported_format", None)


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inner.jpg")
        info.size = len(PHOTO)
        tar.addfile(info, io.BytesIO(PHOTO))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("inner", "kind"),
    [
        (make_zip([("inner.jpg", PHOTO)]), "zip"),
        (make_zip([]), "zip"),
        (gzip.compress(PHOTO), "gzip"),
        (b"7z\xbc\xaf\x27\x1c" + PHOTO, "7z"),
        (b"Rar!\x1a\x07\x00" + PHOTO, "rar"),
        (_tar(), "tar"),
    ],
)
def test_nested_archives_are_reported_not_opened(inner: bytes, kind: str) -> None:
    data = make_zip([("photos.jpg", inner), ("ok.jpg", PHOTO)])

    nested, ok = read_all(data)

    assert (nested.reason, nested.content) == ("nested_archive", None)
    assert kind in (nested.detail or "")
    assert ok.reason is None


@pytest.mark.parametrize(
    "head",
    [b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"],
)
def test_photo_magic_numbers_are_not_taken_for_archives(head: bytes) -> None:
    [entry] = read_all(make_zip([("p", head + PHOTO)]))

    assert entry.reason is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_damaged_archives_raise_only_archive_error(
    edits: list[tuple[int, int]], stored: bool
) -> None:
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    data = bytearray(make_zip([("a.jpg", PHOTO[:400]), ("b/c.jpg", bytes(300))], method))
    for position, value in edits:
        data[position % len(data)] = value

    try:
        entries = read_all(bytes(data))
    except ArchiveError as exc:
        assert exc.reason in ("not_a_zip", "too_many_entries", "too_large")
        return
    for entry in entries:
        assert (entry.content is None) == (entry.reason is not None)
        assert entry.content is None or len(entry.content) <= LIMITS.max_entry_bytes
