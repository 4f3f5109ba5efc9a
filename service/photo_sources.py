"""Lists of labelled photos to enrol or evaluate: a manifest CSV or a folder per individual.

A manifest is a CSV file with a header naming at least the columns `path`,
`individual_id` and `species` (extra columns, such as `source`, are ignored). Paths are
relative to the folder that holds the manifest. A folder source holds one sub-folder per
individual, named by the individual's id, with that individual's photos inside.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import msgspec

__all__ = [
    "IMAGE_EXTENSIONS",
    "REQUIRED_COLUMNS",
    "ManifestEntry",
    "ManifestError",
    "read_entries",
    "read_folder",
    "read_manifest",
    "read_photos",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("path", "individual_id", "species")
"""Columns a manifest header must name; any others are ignored."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)
"""File name endings (lowercase) that `read_folder` treats as photos."""


class ManifestEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One labelled photo.

    Attributes:
        path: absolute path of the image file (not checked for existence: unreadable
            photos are reported one by one when they are loaded).
        individual_id: who the photo shows; "" when the source leaves it empty
            (unidentified), and the caller decides what to do with those.
        species: free-text species, or None when not given.
    """

    path: Path
    individual_id: str
    species: str | None


class ManifestError(Exception):
    """A source of photos that cannot be read at all.

    Attributes:
        source: the manifest file or folder.
        line: 1-based line of the manifest where the problem is, when there is one.
        reason: what is wrong, for a person.
    """

    def __init__(self, source: Path, reason: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else str(source)
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


def read_entries(source: Path) -> list[ManifestEntry]:
    """Read a manifest CSV or a folder-per-individual tree, whichever `source` is.

    Args:
        source: a `.csv` file or a directory.

    Returns:
        The entries, in file order (CSV) or sorted by individual then path (folder).

    Raises:
        ManifestError: `source` is neither, or cannot be read.
    """
    source = Path(source)
    if source.is_dir():
        return read_folder(source)
    if source.suffix.lower() == ".csv":
        return read_manifest(source)
    if not source.exists():
        raise ManifestError(source, "no such file or directory")
    raise ManifestError(
        source, "expected a manifest .csv file or a folder with one sub-folder per individual"
    )


def read_photos(source: Path) -> list[Path]:
    """The photos to identify from a manifest CSV (only its `path` column is needed) or a
    folder (every image file below it, any depth, hidden names skipped, sorted).

    Raises:
        ManifestError: `source` is neither, cannot be read, or holds no photo.
    """
    source = Path(source)
    if source.is_dir():
        try:
            photos = _images_below(source.absolute())
        except OSError as exc:
            raise ManifestError(source, f"cannot list the folder: {exc.strerror or exc}") from exc
    elif source.suffix.lower() == ".csv":
        photos = [entry.path for entry in read_manifest(source, required=("path",))]
    elif not source.exists():
        raise ManifestError(source, "no such file or directory")
    else:
        raise ManifestError(source, "expected a manifest .csv file or a folder of photos")
    if not photos:
        raise ManifestError(source, "no photos in it")
    return photos


def read_manifest(
    csv_path: Path, required: tuple[str, ...] = REQUIRED_COLUMNS
) -> list[ManifestEntry]:
    """Read a manifest CSV.

    Leading and trailing spaces are removed from `individual_id` and `species`, since
    "HW-1 " and "HW-1" would otherwise become two animals; an empty species is None.
    Blank lines are skipped. A UTF-8 byte-order mark (as Excel writes) is accepted.

    Args:
        csv_path: the manifest; its folder is the base of relative paths.
        required: the columns it must have; `individual_id` and `species` read as empty
            when not required and absent.

    Returns:
        One entry per data row, in file order, with absolute paths.

    Raises:
        ManifestError: the file cannot be read or decoded, is empty, its header lacks a
            required column, or a row is malformed (too few fields, an empty path or
            one with a NUL character); the message names the line.
    """
    csv_path = Path(csv_path)
    base = csv_path.absolute().parent
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        raise ManifestError(csv_path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        # Decoded whole (manifests are small) so a bad byte can be placed on its line.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(csv_path, f"not UTF-8 text: {exc.reason}", line=line) from exc
    # newline="": the csv module handles line endings itself, including newlines inside
    # quoted fields. strict: an unclosed quote would otherwise swallow every later row
    # into one field without a word.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        # Blank lines before the header are tolerated like blank rows after it.
        header = next((row for row in reader if any(f.strip() for f in row)), None)
        if header is None:
            raise ManifestError(
                csv_path,
                "empty file; expected a header with the columns " + ", ".join(required),
                line=1,
            )
        columns = _column_positions(csv_path, header, reader.line_num, required)
        return [
            entry
            for row in reader
            if (entry := _entry(csv_path, base, row, columns, reader.line_num)) is not None
        ]
    except csv.Error as exc:
        raise ManifestError(csv_path, f"malformed CSV: {exc}", line=reader.line_num) from exc


def read_folder(root: Path) -> list[ManifestEntry]:
    """Read a tree with one sub-folder per individual.

    Every image file (by extension, any case) anywhere below an individual's folder is
    that individual's, so field seasons may be kept in nested folders. Hidden files and
    folders (name starting with ".") are skipped: macOS leaves "._IMG_0001.JPG" resource
    files beside photos, and they are not images. Files directly in `root` are ignored,
    since they carry no label.

    Args:
        root: the folder whose sub-folders are named by individual id.

    Returns:
        Entries sorted by individual id, then by path; species is None.

    Raises:
        ManifestError: `root` cannot be listed, or holds no image in any sub-folder.
    """
    root = Path(root).absolute()
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        entries = [
            ManifestEntry(path=path, individual_id=folder.name, species=None)
            for folder in folders
            for path in _images_below(folder)
        ]
    except OSError as exc:
        raise ManifestError(root, f"cannot list the folder: {exc.strerror or exc}") from exc
    if not entries:
        raise ManifestError(
            root,
            "no image files found in sub-folders; expected one sub-folder per individual"
            " holding its photos (" + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")",
        )
    return entries


def _images_below(folder: Path) -> list[Path]:
    """Image files anywhere below `folder`, skipping hidden names, sorted by path."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise):
        # Pruning in place stops os.walk from descending into hidden folders.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        )
    return sorted(found)


def _raise(exc: OSError) -> None:
    """os.walk ignores unreadable folders by default; a missing folder must be reported."""
    raise exc


def _column_positions(
    csv_path: Path, header: list[str], line: int, required: tuple[str, ...]
) -> dict[str, int]:
    """Index of each known column in the header (first occurrence wins)."""
    names = [name.strip().lower() for name in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise ManifestError(
            csv_path,
            f"missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
            f" but needs at least {', '.join(required)}",
            line=line,
        )
    return {c: names.index(c) for c in REQUIRED_COLUMNS if c in names}


def _entry(
    csv_path: Path, base: Path, row: list[str], columns: dict[str, int], line: int
) -> ManifestEntry | None:
    """Turn one CSV row into an entry; None for a blank line."""
    if not any(field.strip() for field in row):
        return None
    needed = max(columns.values()) + 1
    if len(row) < needed:
        raise ManifestError(
            csv_path, f"expected at least {needed} fields, got {len(row)}", line=line
        )
    raw_path = row[columns["path"]]
    if not raw_path.strip():
        raise ManifestError(csv_path, "empty path", line=line)
    if "\x00" in raw_path:
        # No file system allows it, and opening such a path raises ValueError, not OSError.
        raise ManifestError(csv_path, "path contains a NUL character", line=line)
    species = row[columns["species"]].strip() if "species" in columns else ""
    return ManifestEntry(
        # normpath folds "a/../b" so the same photo always gets the same path; absolute
        # paths in the manifest are kept as they are by the join.
        path=Path(os.path.normpath(base / raw_path)),
        individual_id=row[columns["individual_id"]].strip() if "individual_id" in columns else "",
        species=species or None,
    )
