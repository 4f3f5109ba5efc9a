"""Sightings: every stored photo with its individual, exported as CSV or Darwin Core.

A sighting is one enrolled photo: who it shows, when and where it was taken. The store is
read page by page and the CSV is produced row by row, so an export of any size streams
in bounded memory. Two tables are offered: a plain one with the store's fields, and a
Darwin Core occurrence table (https://dwc.tdwg.org/terms/) for GBIF and OBIS.

Cells are written for spreadsheets: a text cell that a spreadsheet would run as a formula
(starting with =, +, -, @, tab or carriage return) gets a leading apostrophe (OWASP
"CSV injection"); coordinates are numbers and keep their sign.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

import msgspec

from indexer.store import Store

__all__ = [
    "DARWIN_CORE_COLUMNS",
    "PAGE_SIZE",
    "SCIENTIFIC_NAMES",
    "SIGHTING_COLUMNS",
    "Sighting",
    "darwin_core_csv",
    "iter_sightings",
    "scientific_name",
    "sightings_csv",
]

PAGE_SIZE = 200
"""Individuals read from the store per query by `iter_sightings`."""

SIGHTING_COLUMNS: tuple[str, ...] = (
    "image_id",
    "individual_id",
    "species",
    "taken_at",
    "latitude",
    "longitude",
    "source_name",
    "sha256",
    "enrolled_at",
)
"""Header of `sightings_csv`."""

DARWIN_CORE_COLUMNS: tuple[str, ...] = (
    "occurrenceID",
    "eventDate",
    "decimalLatitude",
    "decimalLongitude",
    "scientificName",
    "vernacularName",
    "organismID",
    "basisOfRecord",
    "associatedMedia",
    "identificationVerificationStatus",
)
"""Header of `darwin_core_csv`: Darwin Core occurrence terms."""

SCIENTIFIC_NAMES: MappingProxyType[str, str] = MappingProxyType(
    {
        "humpback_whale": "Megaptera novaeangliae",
        "north_atlantic_right_whale": "Eubalaena glacialis",
        "southern_right_whale": "Eubalaena australis",
        "blue_whale": "Balaenoptera musculus",
        "fin_whale": "Balaenoptera physalus",
        "minke_whale": "Balaenoptera acutorostrata",
        "sei_whale": "Balaenoptera borealis",
        "brydes_whale": "Balaenoptera edeni",
        "gray_whale": "Eschrichtius robustus",
        "sperm_whale": "Physeter macrocephalus",
        "killer_whale": "Orcinus orca",
        "beluga": "Delphinapterus leucas",
        "bottlenose_dolphin": "Tursiops truncatus",
        # Spelled so in the Happywhale competition data.
        "bottlenose_dolpin": "Tursiops truncatus",
        "common_dolphin": "Delphinus delphis",
        "dusky_dolphin": "Lagenorhynchus obscurus",
        "spinner_dolphin": "Stenella longirostris",
        "spotted_dolphin": "Stenella attenuata",
        "pantropic_spotted_dolphin": "Stenella attenuata",
        "false_killer_whale": "Pseudorca crassidens",
        # A genus: catalogues that do not tell the two pilot whales apart.
        "pilot_whale": "Globicephala",
        "short_finned_pilot_whale": "Globicephala macrorhynchus",
        "long_finned_pilot_whale": "Globicephala melas",
        "melon_headed_whale": "Peponocephala electra",
        "rough_toothed_dolphin": "Steno bredanensis",
        "commersons_dolphin": "Cephalorhynchus commersonii",
        "white_sided_dolphin": "Lagenorhynchus acutus",
        "pacific_white_sided_dolphin": "Lagenorhynchus obliquidens",
        "cuviers_beaked_whale": "Ziphius cavirostris",
        "frasiers_dolphin": "Lagenodelphis hosei",
        "rissos_dolphin": "Grampus griseus",
    }
)
"""Species as catalogues write them -> scientific name. Keys are in the form
`scientific_name` looks up: lowercase, words joined by "_", apostrophes dropped."""

# "Genus species" or "Genus species subspecies", as a species already written
# scientifically would be.
_BINOMIAL = re.compile(r"[A-Z][a-z]+ [a-z]+(?: [a-z]+)?")
_SEPARATORS = re.compile(r"[\s\-]+")
_APOSTROPHES = re.compile(r"['\u2019]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_OCCURRENCE_PREFIX = "urn:whaleid:image:"
# Darwin Core's term for a record made by an instrument: the photo is the evidence.
_BASIS_OF_RECORD = "MachineObservation"
# Enrolled photos were labelled by a person, not guessed by the matcher.
_VERIFICATION = "verified"


class Sighting(msgspec.Struct, frozen=True, kw_only=True):
    """One stored photo with its individual.

    Attributes:
        image_id: the store's image id.
        sha256: hex digest of the photo file; stable across databases.
        source_name: the file name the photo came with.
        individual_id: who it shows.
        species: the individual's species as stored, if known.
        taken_at: ISO 8601 capture time, if known.
        latitude: decimal degrees, south negative, if known.
        longitude: decimal degrees, west negative, if known.
        enrolled_at: ISO 8601 UTC time the photo was stored.
        file_stored: whether the photo's file is kept (`ImageRow.file_bytes`); False for
            photos enrolled before files were kept.
    """

    image_id: int
    sha256: str
    source_name: str
    individual_id: str
    species: str | None
    taken_at: str | None
    latitude: float | None
    longitude: float | None
    enrolled_at: str
    file_stored: bool = False


def iter_sightings(
    store: Store, species: str | None = None, *, page_size: int = PAGE_SIZE
) -> Iterator[Sighting]:
    """Every stored photo with its individual, by individual id then image id.

    Individuals are read `page_size` at a time, with the photos of each; nothing is
    held beyond one page. The export is not one snapshot: photos stored or deleted while
    it runs may or may not appear.

    Args:
        store: the open store.
        species: only individuals of this species (exact match); None for all.
        page_size: individuals per query (>= 1).

    Yields:
        One `Sighting` per photo.

    Raises:
        ValueError: `page_size` < 1.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    offset = 0
    last_id: str | None = None
    while True:
        page = store.list_individuals(species, limit=page_size, offset=offset)
        for individual in page:
            # Offset paging shifts when an individual is added before the offset between
            # two pages; ids are strictly increasing, so a repeated one is skipped.
            if last_id is not None and individual.id <= last_id:
                continue
            last_id = individual.id
            for image in store.images_of(individual.id):
                yield Sighting(
                    image_id=image.id,
                    sha256=image.sha256,
                    source_name=image.source_name,
                    individual_id=individual.id,
                    species=individual.species,
                    taken_at=image.taken_at,
                    latitude=image.latitude,
                    longitude=image.longitude,
                    enrolled_at=image.created_at,
                    file_stored=image.file_bytes is not None,
                )
        if len(page) < page_size:
            return
        offset += page_size


def sightings_csv(sightings: Iterable[Sighting]) -> Iterator[str]:
    """The sightings as CSV text, with the store's own fields.

    Args:
        sightings: e.g. `iter_sightings(store)`.

    Returns:
        An iterator of CSV text: the header line (`SIGHTING_COLUMNS`), then one line
        per sighting (RFC 4180: CRLF line ends, quoted where needed; an unknown value is
        an empty cell).
    """
    return _csv_lines(
        SIGHTING_COLUMNS,
        (
            (
                s.image_id,
                s.individual_id,
                s.species,
                s.taken_at,
                s.latitude,
                s.longitude,
                s.source_name,
                s.sha256,
                s.enrolled_at,
            )
            for s in sightings
        ),
    )


def darwin_core_csv(
    sightings: Iterable[Sighting], *, media_url: str | None = None
) -> Iterator[str]:
    """The sightings as a Darwin Core occurrence table (CSV).

    occurrenceID is `urn:whaleid:image:<sha256>`, the same for the same photo in any
    database; eventDate is the capture time if it is ISO 8601 (else empty);
    scientificName comes from `scientific_name` and vernacularName is the species as
    stored; organismID is the individual id; associatedMedia is the URL of the photo
    (`media_url` filled in) when its file is stored, else empty: a bare file name would
    not lead anyone to the photo.

    Args:
        sightings: e.g. `iter_sightings(store)`.
        media_url: a URL template where `{image_id}` is replaced by the photo's id, e.g.
            "https://whaleid.example.org/v1/images/{image_id}/file"; None leaves
            associatedMedia empty.

    Returns:
        An iterator of CSV text: the header line (`DARWIN_CORE_COLUMNS`), then one line
        per sighting, as for `sightings_csv`.
    """
    return _csv_lines(
        DARWIN_CORE_COLUMNS,
        (
            (
                _OCCURRENCE_PREFIX + s.sha256,
                _event_date(s.taken_at),
                s.latitude,
                s.longitude,
                scientific_name(s.species),
                s.species,
                s.individual_id,
                _BASIS_OF_RECORD,
                media_url.replace("{image_id}", str(s.image_id))
                if media_url is not None and s.file_stored
                else "",
                _VERIFICATION,
            )
            for s in sightings
        ),
    )


def scientific_name(species: str | None) -> str:
    """The scientific name of a species as catalogues write it; "" when unknown.

    The lookup in `SCIENTIFIC_NAMES` ignores case, spaces, hyphens and apostrophes
    ("Risso's dolphin" -> "Grampus griseus"); a name already written as a binomial
    ("Megaptera novaeangliae") is returned as is.
    """
    if species is None:
        return ""
    key = _SEPARATORS.sub("_", _APOSTROPHES.sub("", species.strip().lower()))
    known = SCIENTIFIC_NAMES.get(key)
    if known is not None:
        return known
    return species.strip() if _BINOMIAL.fullmatch(species.strip()) else ""


def _csv_lines(
    header: Sequence[str], rows: Iterable[Sequence[str | int | float | None]]
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(value) for value in row])
        yield buffer.getvalue()


def _cell(value: str | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    if isinstance(value, float):
        # Positional notation of the shortest exact form: 1e-05 would read as text in
        # some tools, and a Darwin Core decimalLatitude is a plain decimal.
        return format(Decimal(repr(value)), "f")
    return str(value)


def _event_date(taken_at: str | None) -> str:
    if taken_at is None:
        return ""
    try:
        datetime.fromisoformat(taken_at)
    except ValueError:
        return ""
    return taken_at
