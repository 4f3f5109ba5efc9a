"""The content-addressed photo store: atomic puts, deletes, the sweep, thumbnails."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from embeddings.photo import ImageError
from indexer.photo_files import THUMBNAIL_SIZES, PhotoFiles
from indexer.store import InvalidInput
from tests.synthetic import encode, fluke, sighting


@pytest.fixture
def files(tmp_path: Path) -> PhotoFiles:
    return PhotoFiles(tmp_path / "photos")


def jpeg(seed: int = 0) -> bytes:
    return encode(sighting("HW-1", seed), "JPEG")


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {".lock"}


def test_put_stores_the_bytes_under_their_sha256(files: PhotoFiles) -> None:
    content = jpeg()
    sha = files.put(content)

    assert sha == hashlib.sha256(content).hexdigest()
    assert files.path(sha) == files.root / sha[:2] / sha
    assert files.has(sha)
    assert files.read(sha) == content
    assert all_files(files.root) == {f"{sha[:2]}/{sha}"}  # no temporary file left


def test_put_is_idempotent(files: PhotoFiles) -> None:
    content = jpeg()
    sha = files.put(content)
    before = files.path(sha).stat().st_mtime_ns

    assert files.put(content) == sha
    assert files.path(sha).stat().st_mtime_ns == before


def test_put_repairs_a_truncated_file(files: PhotoFiles) -> None:
    content = jpeg()
    sha = files.put(content)
    files.path(sha).write_bytes(content[:100])

    files.put(content)

    assert files.read(sha) == content


@pytest.mark.parametrize("sha", ["", "abc", "../" + "a" * 61, "A" * 64, "g" * 64, None])
def test_a_malformed_sha256_is_refused(files: PhotoFiles, sha: object) -> None:
    with pytest.raises(InvalidInput, match="sha256"):
        files.path(sha)  # type: ignore[arg-type]


def test_empty_content_is_refused(files: PhotoFiles) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        files.put(b"")


def test_read_of_a_missing_photo_raises(files: PhotoFiles) -> None:
    with pytest.raises(FileNotFoundError):
        files.read("0" * 64)
    assert not files.has("0" * 64)


def test_delete_removes_the_original_and_its_thumbnails(files: PhotoFiles) -> None:
    sha = files.put(jpeg())
    other = files.put(jpeg(1))
    files.thumbnail(sha, 64)
    files.thumbnail(sha, 128)
    files.thumbnail(other, 64)

    assert files.delete(sha) is True
    assert files.delete(sha) is False

    assert not files.has(sha)
    assert all_files(files.root) == {
        f"{other[:2]}/{other}",
        f"thumbnails/64/{other}.jpg",
    }


def test_sweep_removes_orphans_and_temporary_files_but_never_a_kept_file(
    files: PhotoFiles,
) -> None:
    kept = files.put(jpeg(0))
    orphan = files.put(jpeg(1))
    files.thumbnail(kept, 32)
    files.thumbnail(orphan, 32)
    # Leftovers of writes cut short by a crash, in a shard and among the thumbnails.
    (files.root / kept[:2] / f".{kept}.0badf00d.tmp").write_bytes(b"half")
    (files.root / "ab").mkdir(exist_ok=True)
    (files.root / "ab" / f".{'ab' * 32}.1234abcd.tmp").write_bytes(b"half")
    (files.root / "thumbnails" / "32" / f".{kept}.jpg.0badf00d.tmp").write_bytes(b"half")
    # Not ours: left alone.
    (files.root / kept[:2] / "notes.txt").write_text("keep me")

    removed = files.sweep({kept})

    assert removed == 5
    assert all_files(files.root) == {
        f"{kept[:2]}/{kept}",
        f"{kept[:2]}/notes.txt",
        f"thumbnails/32/{kept}.jpg",
    }
    assert files.read(kept) == jpeg(0)
    assert files.sweep({kept}) == 0


def test_sweep_of_an_empty_store(files: PhotoFiles) -> None:
    assert files.sweep(set()) == 0
    assert list(files.shas()) == []


def test_shas_lists_the_stored_originals(files: PhotoFiles) -> None:
    shas = {files.put(jpeg(seed)) for seed in range(3)}
    files.thumbnail(next(iter(shas)), 32)

    assert set(files.shas()) == shas


def test_thumbnail_is_a_jpeg_of_the_requested_long_side_and_is_cached(files: PhotoFiles) -> None:
    sha = files.put(encode(fluke("HW-1"), "JPEG"))  # 480 x 320

    first = files.thumbnail(sha, 100)
    cached = files.root / "thumbnails" / "100" / f"{sha}.jpg"

    with Image.open(io.BytesIO(first)) as image:
        assert image.format == "JPEG"
        assert max(image.size) == 100
        assert image.size == (100, 67)  # the 3:2 synthetic photo, shrunk
    assert cached.read_bytes() == first
    # Served from the cache: a changed cache file is what comes back.
    cached.write_bytes(b"cached")
    assert files.thumbnail(sha, 100) == b"cached"


def test_thumbnail_applies_exif_orientation(files: PhotoFiles) -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (300, 100), (200, 30, 30)).save(buffer, format="JPEG", exif=exif)
    sha = files.put(buffer.getvalue())

    with Image.open(io.BytesIO(files.thumbnail(sha, 60))) as image:
        assert image.size == (20, 60)


def test_thumbnail_never_enlarges(files: PhotoFiles) -> None:
    sha = files.put(encode(sighting("HW-1", 0)[:40, :60], "PNG"))

    with Image.open(io.BytesIO(files.thumbnail(sha, 512))) as image:
        assert image.size == (60, 40)


@pytest.mark.parametrize("size", [0, THUMBNAIL_SIZES.start - 1, THUMBNAIL_SIZES.stop, -5, 2.5])
def test_thumbnail_size_out_of_range_is_refused(files: PhotoFiles, size: object) -> None:
    sha = files.put(jpeg())
    with pytest.raises(InvalidInput, match="size"):
        files.thumbnail(sha, size)  # type: ignore[arg-type]


def test_thumbnail_of_a_missing_photo_or_an_undecodable_file(files: PhotoFiles) -> None:
    with pytest.raises(FileNotFoundError):
        files.thumbnail("0" * 64, 64)
    sha = files.put(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ImageError):
        files.thumbnail(sha, 64)
    assert not (files.root / "thumbnails" / "64" / f"{sha}.jpg").exists()


def test_written_files_are_not_left_writable_by_others(files: PhotoFiles) -> None:
    sha = files.put(jpeg())
    assert os.stat(files.path(sha)).st_mode & 0o022 == 0
