"""Reading photo sources: manifest CSVs, folder-per-individual trees, and their errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.photo_sources import (
    IMAGE_EXTENSIONS,
    ManifestEntry,
    ManifestError,
    read_entries,
    read_folder,
    read_manifest,
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def touch(path: Path) -> Path:
    return write(path, b"not really an image; the readers never open files")


# ---------------------------------------------------------------------- manifests


def test_manifest_rows_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "set" / "manifest.csv",
        "path,individual_id,species,source\n"
        "images/a.jpg,HW-1,humpback_whale,survey 2019\n"
        "images/sub/../b.jpg,HW-2,,\n",
    )

    entries = read_manifest(manifest)

    assert entries == [
        ManifestEntry(
            path=tmp_path / "set" / "images" / "a.jpg",
            individual_id="HW-1",
            species="humpback_whale",
        ),
        ManifestEntry(
            path=tmp_path / "set" / "images" / "b.jpg", individual_id="HW-2", species=None
        ),
    ]
    assert all(e.path.is_absolute() for e in entries)


def test_manifest_given_by_relative_path_still_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "m.csv", "path,individual_id,species\na.jpg,X,\n")
    monkeypatch.chdir(tmp_path)

    (entry,) = read_manifest(Path("m.csv"))

    assert entry.path == tmp_path / "a.jpg"


def test_manifest_keeps_absolute_paths(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "a.jpg"
    manifest = write(tmp_path / "m.csv", f"path,individual_id,species\n{elsewhere},X,\n")

    assert read_manifest(manifest)[0].path == elsewhere


def test_manifest_empty_individual_id_is_returned_for_the_caller_to_decide(
    tmp_path: Path,
) -> None:
    manifest = write(tmp_path / "m.csv", "path,individual_id,species\na.jpg,,bottlenose\n")

    (entry,) = read_manifest(manifest)

    assert entry.individual_id == ""
    assert entry.species == "bottlenose"


def test_manifest_tolerates_excel_habits(tmp_path: Path) -> None:
    # BOM, CRLF, capitalised header in another order, padded values, quoted commas,
    # blank lines before the header and between rows.
    text = (
        "\ufeff\r\n"
        "Species , Path,Individual_ID,notes\r\n"
        ' humpback_whale ,"a, b.jpg", HW-1 ,"x, y"\r\n'
        "\r\n"
        ",c.jpg,HW-2,\r\n"
    )
    manifest = write(tmp_path / "m.csv", text.encode("utf-8"))

    entries = read_manifest(manifest)

    assert [(e.path.name, e.individual_id, e.species) for e in entries] == [
        ("a, b.jpg", "HW-1", "humpback_whale"),
        ("c.jpg", "HW-2", None),
    ]


def test_manifest_with_header_only_has_no_entries(tmp_path: Path) -> None:
    assert read_manifest(write(tmp_path / "m.csv", "path,individual_id,species\n")) == []


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        pytest.param(b"", 1, "empty file", id="empty"),
        pytest.param(b"\n  \n\n", 1, "empty file", id="blank-lines-only"),
        pytest.param(b"path,individual_id\na.jpg,X\n", 1, "species", id="missing-species"),
        pytest.param(b"file,id,species\n", 1, "path, individual_id", id="missing-two"),
        pytest.param(
            b"path,individual_id,species\na.jpg,X,\nb.jpg\n", 3, "at least 3 fields", id="short"
        ),
        pytest.param(b"path,individual_id,species\n ,X,\n", 2, "empty path", id="empty-path"),
        pytest.param(
            b"path,individual_id,species\na.jpg,X,\nb\xff.jpg,Y,\n", 3, "UTF-8", id="not-utf8"
        ),
        pytest.param(
            b'path,individual_id,species\na.jpg,X,\n"b.jpg,Y,\n', 3, "malformed", id="open-quote"
        ),
        pytest.param(
            b"path,individual_id,species\na.jpg,X,\nb\x00.jpg,Y,\n", 3, "NUL", id="nul-in-path"
        ),
    ],
)
def test_bad_manifest_names_line_and_reason(
    tmp_path: Path, content: bytes, line: int, words: str
) -> None:
    manifest = write(tmp_path / "m.csv", content)

    with pytest.raises(ManifestError) as caught:
        read_manifest(manifest)

    assert caught.value.line == line
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"{manifest}:{line}: ")


def test_unreadable_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read") as caught:
        read_manifest(tmp_path / "missing.csv")

    assert caught.value.source == tmp_path / "missing.csv"


_FIELD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_FIELD, _FIELD), max_size=6))
def test_manifest_round_trips_any_text(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    manifest = tmp_path / "m.csv"
    with manifest.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "individual_id", "species"])
        for i, (individual, species) in enumerate(rows):
            writer.writerow([f"img_{i}.jpg", individual, species])
    # A row whose every field is blank is a blank line, which the reader skips; ours
    # always has a path, so every row must come back.

    entries = read_manifest(manifest)

    assert [(e.path.name, e.individual_id, e.species) for e in entries] == [
        (f"img_{i}.jpg", individual.strip(), species.strip() or None)
        for i, (individual, species) in enumerate(rows)
    ]


# ---------------------------------------------------------------------- folders


def test_folder_gives_one_individual_per_subfolder_sorted(tmp_path: Path) -> None:
    for name in ("B/2.jpg", "B/1.PNG", "A/x.JpEg", "A/season/y.heic", "A/z.tiff"):
        touch(tmp_path / name)

    entries = read_folder(tmp_path)

    assert [(e.individual_id, e.path.relative_to(tmp_path).as_posix()) for e in entries] == [
        ("A", "A/season/y.heic"),
        ("A", "A/x.JpEg"),
        ("A", "A/z.tiff"),
        ("B", "B/1.PNG"),
        ("B", "B/2.jpg"),
    ]
    assert all(e.species is None and e.path.is_absolute() for e in entries)


def test_folder_skips_non_images_hidden_files_and_loose_files(tmp_path: Path) -> None:
    touch(tmp_path / "loose.jpg")  # no label: not an individual's photo
    touch(tmp_path / "A" / "keep.jpg")
    touch(tmp_path / "A" / "notes.txt")
    touch(tmp_path / "A" / "._keep.jpg")  # macOS resource fork, not an image
    touch(tmp_path / "A" / ".thumbs" / "t.jpg")
    touch(tmp_path / ".trash" / "old.jpg")

    entries = read_folder(tmp_path)

    assert [e.path.name for e in entries] == ["keep.jpg"]


@pytest.mark.parametrize("extension", sorted(IMAGE_EXTENSIONS))
def test_folder_accepts_every_image_extension_in_any_case(tmp_path: Path, extension: str) -> None:
    touch(tmp_path / "A" / f"lower{extension}")
    touch(tmp_path / "A" / f"upper{extension.upper()}")

    assert len(read_folder(tmp_path)) == 2


@pytest.mark.parametrize(
    "layout", [[], ["loose.jpg"], ["A/notes.txt"]], ids=["empty", "loose-only", "no-images"]
)
def test_folder_without_labelled_images_is_an_error(tmp_path: Path, layout: list[str]) -> None:
    for name in layout:
        touch(tmp_path / name)

    with pytest.raises(ManifestError, match="one sub-folder per individual"):
        read_folder(tmp_path)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot list"):
        read_folder(tmp_path / "missing")


# ---------------------------------------------------------------------- dispatch


def test_read_entries_dispatches_on_what_the_source_is(tmp_path: Path) -> None:
    touch(tmp_path / "tree" / "A" / "a.jpg")
    manifest = write(tmp_path / "LIST.CSV", "path,individual_id,species\na.jpg,X,\n")

    assert [e.individual_id for e in read_entries(tmp_path / "tree")] == ["A"]
    assert [e.individual_id for e in read_entries(manifest)] == ["X"]


@pytest.mark.parametrize(
    ("name", "words"),
    [("photo.jpg", "expected a manifest .csv"), ("missing", "no such file")],
)
def test_read_entries_refuses_other_sources(tmp_path: Path, name: str, words: str) -> None:
    if name != "missing":
        touch(tmp_path / name)

    with pytest.raises(ManifestError, match=words):
        read_entries(tmp_path / name)
