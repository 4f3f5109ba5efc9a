"""Sightings export: paging through the store, CSV escaping, formula guard, Darwin Core."""

from __future__ import annotations

import csv
import hashlib
import io
import types
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from embeddings.protocol import LocalFeatures
from indexer.sightings import (
    DARWIN_CORE_COLUMNS,
    SCIENTIFIC_NAMES,
    SIGHTING_COLUMNS,
    Sighting,
    darwin_core_csv,
    iter_sightings,
    scientific_name,
    sightings_csv,
)
from indexer.store import Individual, NewImage, Store


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "db.sqlite3") as opened:
        yield opened


def add(
    store: Store,
    key: int | str,
    individual_id: str,
    species: str | None = "humpback_whale",
    **fields: object,
) -> int:
    image = NewImage(
        sha256=sha(key),
        source_name=f"{key}.jpg",
        individual_id=individual_id,
        width=640,
        height=480,
        **fields,  # type: ignore[arg-type]
    )
    image_id, stored = store.add_image(image, species, [])
    assert stored
    return image_id


def rows(chunks: Iterable[str]) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(chunks), newline="")))


def as_dicts(chunks: Iterable[str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO("".join(chunks), newline="")))


def sighting(**fields: object) -> Sighting:
    values: dict[str, object] = {
        "image_id": 1,
        "sha256": sha(1),
        "source_name": "IMG_1.jpg",
        "individual_id": "HW-1",
        "species": "humpback_whale",
        "taken_at": "2019-07-04T13:05:00",
        "latitude": 57.1,
        "longitude": -135.4,
        "enrolled_at": "2024-05-01T10:00:00+00:00",
    }
    return Sighting(**{**values, **fields})  # type: ignore[arg-type]


def test_empty_store_gives_the_header_only(store: Store) -> None:
    assert list(iter_sightings(store)) == []
    assert rows(sightings_csv(iter_sightings(store))) == [list(SIGHTING_COLUMNS)]
    assert rows(darwin_core_csv(iter_sightings(store))) == [list(DARWIN_CORE_COLUMNS)]


def test_columns_are_the_documented_ones() -> None:
    assert SIGHTING_COLUMNS == (
        "image_id", "individual_id", "species", "taken_at", "latitude", "longitude",
        "source_name", "sha256", "enrolled_at",
    )  # fmt: skip
    assert DARWIN_CORE_COLUMNS == (
        "occurrenceID", "eventDate", "decimalLatitude", "decimalLongitude", "scientificName",
        "vernacularName", "organismID", "basisOfRecord", "associatedMedia",
        "identificationVerificationStatus",
    )  # fmt: skip


def test_sightings_carry_the_image_and_its_individual(store: Store) -> None:
    features = LocalFeatures(
        keypoints=np.zeros((3, 4), dtype=np.float32),
        descriptors=np.zeros((3, 128), dtype=np.uint8),
    )
    image = NewImage(
        sha256=sha("x"),
        source_name="IMG_0042.HEIC",
        individual_id="HW-0042",
        width=4032,
        height=3024,
        taken_at="2019-07-04T13:05:00",
        latitude=-33.865143,
        longitude=151.2099,
    )
    image_id, _ = store.add_image(image, "humpback_whale", [("rootsift", "1", features)])
    stored = store.image(image_id)
    assert stored is not None

    assert list(iter_sightings(store)) == [
        Sighting(
            image_id=image_id,
            sha256=sha("x"),
            source_name="IMG_0042.HEIC",
            individual_id="HW-0042",
            species="humpback_whale",
            taken_at="2019-07-04T13:05:00",
            latitude=-33.865143,
            longitude=151.2099,
            enrolled_at=stored.created_at,
        )
    ]


def test_order_is_individual_id_then_image_id(store: Store) -> None:
    ids = {}
    for key, individual in [(1, "C"), (2, "A"), (3, "B"), (4, "A"), (5, "C"), (6, "A")]:
        ids[key] = add(store, key, individual)

    order = [(s.individual_id, s.image_id) for s in iter_sightings(store)]

    assert order == [
        ("A", ids[2]), ("A", ids[4]), ("A", ids[6]), ("B", ids[3]), ("C", ids[1]), ("C", ids[5])
    ]  # fmt: skip


def test_species_filter(store: Store) -> None:
    add(store, 1, "HW-1", "humpback_whale")
    add(store, 2, "BD-1", "bottlenose_dolphin")
    add(store, 3, "HW-2", "humpback_whale")
    add(store, 4, "X-1", None)

    humpbacks = [s.individual_id for s in iter_sightings(store, "humpback_whale")]

    assert humpbacks == ["HW-1", "HW-2"]
    assert [s.individual_id for s in iter_sightings(store, "bottlenose_dolphin")] == ["BD-1"]
    assert list(iter_sightings(store, "fin_whale")) == []
    assert len(list(iter_sightings(store))) == 4


@pytest.mark.parametrize(("individuals", "page_size"), [(5, 2), (4, 2), (3, 1), (3, 10)])
def test_pages_cover_every_individual_once(
    store: Store, individuals: int, page_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = []
    for i in range(individuals):
        for j in range(2):
            expected.append((f"HW-{i:02d}", add(store, f"{i}-{j}", f"HW-{i:02d}")))
    calls: list[tuple[int, int]] = []
    real = store.list_individuals

    def spy(species: str | None = None, limit: int = 100, offset: int = 0) -> list[Individual]:
        calls.append((limit, offset))
        return real(species, limit, offset)

    monkeypatch.setattr(store, "list_individuals", spy)

    sightings = iter_sightings(store, page_size=page_size)
    first = next(sightings)
    assert len(calls) == 1  # streamed: one page read for the first sighting
    got = [first, *sightings]

    assert [(s.individual_id, s.image_id) for s in got] == expected
    # Pages are read until one comes back short (possibly empty).
    pages = individuals // page_size + 1
    assert calls == [(page_size, k * page_size) for k in range(pages)]


def test_an_individual_added_before_the_offset_while_paging_is_not_repeated(
    store: Store,
) -> None:
    for individual in ("B", "C", "D", "E"):
        add(store, individual, individual)
    sightings = iter_sightings(store, page_size=2)

    first = next(sightings)  # reads the page [B, C]
    add(store, "A", "A")  # moves C to offset 2, the next page's start
    rest = list(sightings)

    assert [s.individual_id for s in [first, *rest]] == ["B", "C", "D", "E"]


@pytest.mark.parametrize("page_size", [0, -1])
def test_page_size_must_be_positive(store: Store, page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        next(iter_sightings(store, page_size=page_size))


def test_sightings_csv_one_chunk_per_row_and_none_as_empty(store: Store) -> None:
    full = add(store, 1, "HW-1", taken_at="2019-07-04T13:05:00", latitude=57.1, longitude=-135.4)
    bare = add(store, 2, "X-1", None)

    chunks = list(sightings_csv(iter_sightings(store)))

    assert len(chunks) == 3
    assert all(chunk.endswith("\r\n") and chunk.count("\r\n") == 1 for chunk in chunks)
    header, *table = rows(chunks)
    assert header == list(SIGHTING_COLUMNS)
    by_id = {int(row[0]): dict(zip(header, row, strict=True)) for row in table}
    assert by_id[full]["taken_at"] == "2019-07-04T13:05:00"
    assert (by_id[full]["latitude"], by_id[full]["longitude"]) == ("57.1", "-135.4")
    assert by_id[full]["sha256"] == sha(1)
    enrolled_at = by_id[bare].pop("enrolled_at")
    assert enrolled_at.startswith("20")
    assert by_id[bare] == {
        "image_id": str(bare),
        "individual_id": "X-1",
        "species": "",
        "taken_at": "",
        "latitude": "",
        "longitude": "",
        "source_name": "2.jpg",
        "sha256": sha(2),
    }


@pytest.mark.parametrize(
    "name",
    [
        'IMG, "the one", 1.jpg',
        'say "hi".jpg',
        "two\nlines.jpg",
        "cr\r\nlf.jpg",
        "Île-aux-Baleines.jpg",
    ],
)
def test_commas_quotes_and_newlines_round_trip(name: str) -> None:
    [parsed] = as_dicts(sightings_csv([sighting(source_name=name, individual_id=name)]))
    [dwc] = as_dicts(darwin_core_csv([sighting(source_name=name, individual_id=name)]))

    assert (parsed["source_name"], parsed["individual_id"]) == (name, name)
    assert dwc["organismID"] == name


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "=1"],
)
def test_formula_like_text_gets_an_apostrophe(text: str) -> None:
    row = sighting(source_name=text, individual_id=text, species=text, taken_at=text)

    [plain] = as_dicts(sightings_csv([row]))
    [dwc] = as_dicts(darwin_core_csv([row]))

    for column in ("source_name", "individual_id", "species", "taken_at"):
        assert plain[column] == "'" + text
    for column in ("organismID", "vernacularName"):
        assert dwc[column] == "'" + text


@pytest.mark.parametrize("text", ["HW-1", "a=b", "1+1", "O'Brien", " =spaced"])
def test_ordinary_text_is_left_alone(text: str) -> None:
    [plain] = as_dicts(sightings_csv([sighting(source_name=text)]))

    assert plain["source_name"] == text


@pytest.mark.parametrize(
    ("latitude", "longitude", "expected"),
    [
        (-33.865143, -151.2099, ("-33.865143", "-151.2099")),
        (-90.0, 180.0, ("-90.0", "180.0")),
        (1e-05, -0.00012, ("0.00001", "-0.00012")),
        (0.0, -0.0, ("0.0", "-0.0")),
    ],
)
def test_coordinates_stay_numbers(
    latitude: float, longitude: float, expected: tuple[str, str]
) -> None:
    row = sighting(latitude=latitude, longitude=longitude)

    [plain] = as_dicts(sightings_csv([row]))
    [dwc] = as_dicts(darwin_core_csv([row]))

    assert (plain["latitude"], plain["longitude"]) == expected
    assert (dwc["decimalLatitude"], dwc["decimalLongitude"]) == expected
    assert (float(expected[0]), float(expected[1])) == (latitude, longitude)


def test_negative_coordinates_from_the_store_are_not_guarded(store: Store) -> None:
    add(store, 1, "SRW-1", "southern_right_whale", latitude=-42.5, longitude=-64.25)

    [plain] = as_dicts(sightings_csv(iter_sightings(store)))

    assert (plain["latitude"], plain["longitude"]) == ("-42.5", "-64.25")


def test_darwin_core_row(store: Store) -> None:
    add(
        store,
        1,
        "HW-0042",
        "Humpback Whale",
        taken_at="2019-07-04T13:05:00",
        latitude=57.05,
        longitude=-135.33,
        file_bytes=1234,
        format="JPEG",
    )
    add(store, 2, "Z-1", "unknown_whale")  # enrolled before photo files were kept

    media = "https://whaleid.example/v1/images/{image_id}/file"
    header, *table = rows(darwin_core_csv(iter_sightings(store), media_url=media))

    assert header == list(DARWIN_CORE_COLUMNS)
    assert [dict(zip(header, row, strict=True)) for row in table] == [
        {
            "occurrenceID": f"urn:whaleid:image:{sha(1)}",
            "eventDate": "2019-07-04T13:05:00",
            "decimalLatitude": "57.05",
            "decimalLongitude": "-135.33",
            "scientificName": "Megaptera novaeangliae",
            "vernacularName": "Humpback Whale",
            "organismID": "HW-0042",
            "basisOfRecord": "MachineObservation",
            "associatedMedia": "https://whaleid.example/v1/images/1/file",
            "identificationVerificationStatus": "verified",
        },
        {
            "occurrenceID": f"urn:whaleid:image:{sha(2)}",
            "eventDate": "",
            "decimalLatitude": "",
            "decimalLongitude": "",
            "scientificName": "",
            "vernacularName": "unknown_whale",
            "organismID": "Z-1",
            "basisOfRecord": "MachineObservation",
            "associatedMedia": "",
            "identificationVerificationStatus": "verified",
        },
    ]


def test_occurrence_id_is_stable_across_databases(tmp_path: Path) -> None:
    occurrence_ids = []
    for name, others in (("a.sqlite3", 0), ("b.sqlite3", 3)):
        with Store.open(tmp_path / name) as db:
            for i in range(others):  # so the photo gets another image id in each
                add(db, i, "Z-9")
            add(db, "shared", "HW-1")
            table = as_dicts(darwin_core_csv(iter_sightings(db)))
            occurrence_ids += [r["occurrenceID"] for r in table if r["organismID"] == "HW-1"]

    assert occurrence_ids == [f"urn:whaleid:image:{sha('shared')}"] * 2


@pytest.mark.parametrize(
    ("taken_at", "event_date"),
    [
        ("2019-07-04T13:05:00", "2019-07-04T13:05:00"),
        ("2019-07-04", "2019-07-04"),
        ("2019-07-04T13:05:00+02:00", "2019-07-04T13:05:00+02:00"),
        (None, ""),
        ("last summer", ""),
        ("", ""),
    ],
)
def test_event_date_is_iso_8601_or_empty(taken_at: str | None, event_date: str) -> None:
    [dwc] = as_dicts(darwin_core_csv([sighting(taken_at=taken_at)]))

    assert dwc["eventDate"] == event_date


@pytest.mark.parametrize(
    ("species", "expected"),
    [
        (None, ""),
        ("", ""),
        ("humpback_whale", "Megaptera novaeangliae"),
        ("Humpback Whale", "Megaptera novaeangliae"),
        ("  humpback-whale ", "Megaptera novaeangliae"),
        ("north_atlantic_right_whale", "Eubalaena glacialis"),
        ("bottlenose_dolpin", "Tursiops truncatus"),
        ("bottlenose_dolphin", "Tursiops truncatus"),
        ("Risso's dolphin", "Grampus griseus"),
        ("risso\u2019s_dolphin", "Grampus griseus"),
        ("rissos_dolphin", "Grampus griseus"),
        ("Beluga", "Delphinapterus leucas"),
        ("pilot_whale", "Globicephala"),
        ("pantropic_spotted_dolphin", "Stenella attenuata"),
        ("Megaptera novaeangliae", "Megaptera novaeangliae"),
        ("Orcinus orca", "Orcinus orca"),
        ("Tursiops truncatus aduncus", "Tursiops truncatus aduncus"),
        ("unknown_whale", ""),
        ("megaptera novaeangliae", ""),
        ("Megaptera", ""),
    ],
)
def test_scientific_names(species: str | None, expected: str) -> None:
    assert scientific_name(species) == expected


def test_scientific_names_table_is_read_only_and_in_lookup_form() -> None:
    assert isinstance(SCIENTIFIC_NAMES, types.MappingProxyType)
    with pytest.raises(TypeError):
        SCIENTIFIC_NAMES["new_whale"] = "Nova balaena"  # type: ignore[index]
    for key, name in SCIENTIFIC_NAMES.items():
        assert scientific_name(key) == name
        assert key == key.lower() and " " not in key and "-" not in key and "'" not in key
    assert len(SCIENTIFIC_NAMES) >= 31


def test_associated_media_needs_a_stored_file_and_a_url() -> None:
    media = "http://host:8000/v1/images/{image_id}/file"
    stored = sighting(image_id=7, file_stored=True)
    [with_url] = as_dicts(darwin_core_csv([stored], media_url=media))
    [without_url] = as_dicts(darwin_core_csv([stored]))
    [no_file] = as_dicts(darwin_core_csv([sighting(image_id=7)], media_url=media))

    assert with_url["associatedMedia"] == "http://host:8000/v1/images/7/file"
    assert without_url["associatedMedia"] == ""
    assert no_file["associatedMedia"] == ""
