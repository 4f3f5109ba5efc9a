"""The catalogue commands: enrol, individual list/show/rename/merge/delete, image delete,
export."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from tqdm import tqdm

from embeddings.images import load_photo_file
from embeddings.photo import ImageError
from indexer.store import Conflict, InvalidInput
from service.cli._data import open_gallery, open_store, opened_gallery
from service.cli._exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandError, fail
from service.cli._output import progress_bar
from service.config import Settings
from service.photo_sources import ManifestEntry, read_entries

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from indexer.catalogue import Catalogue
    from indexer.describer import DescribedPhoto
    from indexer.gallery import Gallery
    from indexer.results import EnrolResult

__all__ = [
    "delete_image",
    "delete_individual",
    "enrol",
    "export",
    "individuals",
    "merge",
    "rename",
    "show",
]


def enrol(args: argparse.Namespace, settings: Settings) -> int:
    """Enrol every labelled photo of a manifest or folder; bad photos are reported and
    skipped, never abort the run. With `--ray ADDRESS`, photos are described on the
    cluster's workers and stored here, in manifest order."""
    # Read the source before opening the gallery: a typo in the path must not create
    # an empty database as a side effect.
    entries = read_entries(args.source)
    counts = {"enrolled": 0, "duplicates": 0, "failed": 0, "skipped": 0}
    interrupted = False
    gallery = open_gallery(settings, create=True)
    try:
        with tqdm(total=len(entries), desc="enrol", unit="photo", file=sys.stderr) as bar:
            if args.ray is None:
                outcomes = (_enrol_one(gallery, entry, settings) for entry in entries)
            else:
                outcomes = _enrol_on_cluster(gallery, entries, settings, args.ray, bar)
            for outcome in outcomes:
                counts[outcome] += 1
                bar.update()
        # Probabilities stay calibrated as the catalogue grows (the service refits too,
        # but a CLI run may be the only writer).
        with progress_bar("calibrate", "query") as progress:
            gallery.calibrator.refit_if_due(progress)
    except KeyboardInterrupt:
        # Every enrolment acknowledged so far is committed; say how far the run got.
        interrupted = True
    finally:
        gallery.close()
    print(
        f"enrolled {counts['enrolled']}, duplicates {counts['duplicates']},"
        f" failed {counts['failed']}, skipped {counts['skipped']} (no individual_id)"
        f" into {settings.data_dir}" + (" - interrupted" if interrupted else "")
    )
    if interrupted:
        return EXIT_INTERRUPTED
    if counts["enrolled"] + counts["duplicates"] == 0:
        return fail(f"no photo of {args.source} could be enrolled", EXIT_FAILED)
    return EXIT_OK


def _enrol_one(gallery: Gallery, entry: ManifestEntry, settings: Settings) -> str:
    """Enrol one photo and return which counter it adds to."""
    if not entry.individual_id:
        return "skipped"
    return _stored(
        entry,
        lambda: gallery.catalogue.enrol(
            load_photo_file(entry.path, max_pixels=settings.max_image_pixels),
            entry.individual_id,
            species=entry.species,
            source_name=entry.path.name,
        ),
    )


def _enrol_on_cluster(
    gallery: Gallery, entries: list[ManifestEntry], settings: Settings, address: str, bar: tqdm
) -> Iterator[str]:
    """`_enrol_one` for each entry, the photos described on the cluster at `address`.
    Photos stored already with every feature (a run resumed) are not sent."""
    from cluster.session import connected  # Ray is an optional extra
    from service.cluster_jobs import described_on_cluster

    catalogue = gallery.catalogue
    sent = []
    # Each file is read once here to know it by content: a long pause, said, on a large
    # archive on slow storage.
    bar.set_postfix_str("finding the photos stored already")
    for entry in entries:
        if not entry.individual_id:
            yield "skipped"
        elif _stored_already(catalogue, entry):
            yield "duplicates"
        else:
            sent.append(entry)
    bar.set_postfix_str(f"on {address}")
    with connected(address) as cpus:
        described = described_on_cluster(settings, cpus)([entry.path for entry in sent])
        for entry, photo in zip(sent, described, strict=True):
            yield _stored(entry, partial(_enrol_described, catalogue, entry, photo))


def _enrol_described(
    catalogue: Catalogue, entry: ManifestEntry, photo: DescribedPhoto | ImageError
) -> EnrolResult:
    if isinstance(photo, ImageError):  # reported by `_stored`, as on one process
        raise photo
    return catalogue.enrol_described(
        photo, entry.individual_id, species=entry.species, source_name=entry.path.name
    )


def _stored_already(catalogue: Catalogue, entry: ManifestEntry) -> bool:
    try:
        content = entry.path.read_bytes()
    except OSError:
        return False  # the worker says what is wrong with it
    return catalogue.holds(hashlib.sha256(content).hexdigest(), entry.individual_id)


def _stored(entry: ManifestEntry, enrol: Callable[[], EnrolResult]) -> str:
    """Run one enrolment and return which counter it adds to; a refusal is reported."""
    try:
        result = enrol()
    except ImageError as exc:
        tqdm.write(f"failed: {entry.path}: {exc.reason}: {exc.message}", file=sys.stderr)
        return "failed"
    except (InvalidInput, Conflict) as exc:  # an id with a '/'; a photo of another individual
        tqdm.write(f"failed: {entry.path}: {exc}", file=sys.stderr)
        return "failed"
    return "enrolled" if result.created else "duplicates"


def export(args: argparse.Namespace, settings: Settings) -> int:
    """Write every sighting as CSV or a Darwin Core occurrence table."""
    from indexer.files import replacing
    from indexer.sightings import darwin_core_csv, iter_sightings, sightings_csv

    media_url = None
    if args.base_url is not None:
        from service.routes.catalogue import IMAGE_FILE_PATH

        media_url = args.base_url.rstrip("/") + IMAGE_FILE_PATH
    with open_store(settings) as store:
        sightings = iter_sightings(store, args.species)
        if args.format == "dwc":
            rows = darwin_core_csv(sightings, media_url=media_url)
        else:
            rows = sightings_csv(sightings)
        if args.out is None:
            sys.stdout.writelines(rows)
        else:
            # Written beside the target and renamed, so a failed export leaves no half file.
            with replacing(args.out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
                f.writelines(rows)
    return EXIT_OK


def individuals(args: argparse.Namespace, settings: Settings) -> int:
    """List individuals, one per line: id, species, photo count, name."""
    with open_store(settings) as store:
        offset = 0
        while page := store.list_individuals(args.species, limit=500, offset=offset):
            for row in page:
                print(f"{row.id}\t{row.species or '-'}\t{row.image_count}\t{row.name or ''}")
            offset += len(page)
    return EXIT_OK


def show(args: argparse.Namespace, settings: Settings) -> int:
    """Print one individual and its photos (sightings)."""
    with open_store(settings) as store:
        row = store.individual(args.individual)
        if row is None:
            raise CommandError(f"individual {args.individual!r} not found")
        print(f"{row.id}  species: {row.species or '-'}  name: {row.name or '-'}")
        for image in store.images_of(row.id):
            where = (
                f"{image.latitude:.5f},{image.longitude:.5f}"
                if image.latitude is not None and image.longitude is not None
                else "-"
            )
            print(f"  image {image.id}\t{image.source_name}\t{image.taken_at or '-'}\t{where}")
    return EXIT_OK


def rename(args: argparse.Namespace, settings: Settings) -> int:
    with opened_gallery(settings) as gallery:
        gallery.catalogue.rename_individual(args.old, args.new)
    print(f"renamed {args.old} to {args.new}")
    return EXIT_OK


def merge(args: argparse.Namespace, settings: Settings) -> int:
    with opened_gallery(settings) as gallery:
        moved = gallery.catalogue.merge_individuals(args.source, args.target)
    print(f"merged {args.source} into {args.target}: {moved} photos moved")
    return EXIT_OK


def delete_individual(args: argparse.Namespace, settings: Settings) -> int:
    with opened_gallery(settings) as gallery:
        deleted = gallery.catalogue.delete_individual(args.individual)
    print(f"deleted {args.individual} and its {deleted} photos")
    return EXIT_OK


def delete_image(args: argparse.Namespace, settings: Settings) -> int:
    with opened_gallery(settings) as gallery:
        if not gallery.catalogue.delete_image(args.image_id):
            raise CommandError(f"image {args.image_id} not found")
    print(f"deleted image {args.image_id}")
    return EXIT_OK
