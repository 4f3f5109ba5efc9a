"""The index commands: rebuild, import-centroids, and stats."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

import msgspec

from service.cli._data import opened_gallery
from service.cli._exits import EXIT_OK, CommandError
from service.cli._output import progress_bar, stage_bars
from service.config import Settings

__all__ = ["import_centroids", "rebuild", "stats"]

# Photos named in a summary line; the rest are counted.
_SHOWN = 5


def rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Give stored photos the features of the current extractor settings and models,
    from their stored files, then rebuild the derived search index from the database;
    with `--ray ADDRESS`, the photos are described and the index filled in shards on
    that cluster's workers."""
    with opened_gallery(settings, load_index=False) as gallery, ExitStack() as stack:
        describe, fill = None, None
        if args.ray is not None:
            from cluster.index_build import fill_on_cluster  # Ray is an optional extra
            from cluster.session import connected
            from indexer.catalogue import REEXTRACT_MAX_PIXELS
            from service.cluster_jobs import described_on_cluster

            cpus = stack.enter_context(connected(args.ray))
            # The stored photos were accepted when enrolled, whatever today's upload limit.
            generous = msgspec.structs.replace(settings, max_image_pixels=REEXTRACT_MAX_PIXELS)
            describe, fill = described_on_cluster(generous, cpus), fill_on_cluster(cpus)
        with progress_bar("re-extract", "photo") as progress:
            done = gallery.catalogue.reextract(progress, describe)
        with (
            stage_bars("image") as rebuilding,
            progress_bar("calibrate", "query") as calibrating,
        ):
            gallery.rebuild(rebuilding, fill=fill, calibrating=calibrating)
    if done.extracted:
        print(f"features extracted from {done.extracted} stored photos")
    missing = [u for u in done.unextracted if u.reason == "no_file"]
    failed = [u for u in done.unextracted if u.reason != "no_file"]
    if missing:
        shown = ", ".join(f"{u.image_id} ({u.source_name})" for u in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        print(
            f"{len(missing)} photos have no stored file (enrolled before photo files were"
            f" kept) and stay unsearchable until their files are enrolled again: image"
            f" {shown}{more}",
            file=sys.stderr,
        )
    for item in failed:
        print(f"failed: image {item.image_id} ({item.source_name}): {item.reason}", file=sys.stderr)
    print(f"index rebuilt in {settings.data_dir}")
    return EXIT_OK


def import_centroids(args: argparse.Namespace, settings: Settings) -> int:
    """Put the ArcFace class centroids of the installed embedder's checkpoint into the
    gallery, so its individuals are found beside the enrolled ones."""
    from embeddings.model_files import sha256_of
    from indexer.centroids import read_centroids

    # Centroids may be the first thing a catalogue holds (the Happywhale individuals).
    with opened_gallery(settings, create=True) as gallery:
        embedder = gallery.embedder
        if embedder is None:
            raise CommandError(
                f"no ArcFace model in {settings.models_dir}: export it there first"
                " (scripts/export_onnx.py), then import its centroids"
            )
        expected = getattr(embedder, "checkpoint_sha256", None)
        if expected is not None and sha256_of(args.checkpoint) != expected:
            raise CommandError(
                f"{args.checkpoint} is not the checkpoint the installed model was exported"
                " from (sha256 differs): its centroids would not match the embeddings"
            )
        rows = read_centroids(args.checkpoint, args.classes, args.species_map)
        stored = gallery.catalogue.import_centroids(rows)
    print(f"imported {stored} centroids of {embedder.name}-{embedder.version}")
    return EXIT_OK


def stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print how much the gallery holds."""
    with opened_gallery(settings) as gallery:
        stats = gallery.stats()
    rows = [
        ("data dir", settings.data_dir),
        ("individuals", stats.individuals),
        ("photos", stats.stored_images),
        ("searchable", stats.images),
        ("descriptors", stats.descriptors),
        ("embeddings", stats.embeddings),
        ("centroids", stats.centroids),
    ]
    for label, value in rows:
        print(f"{label:<12} {value}")
    if stats.images < stats.stored_images:
        print(
            f"{stats.stored_images - stats.images} photos have no features of the current"
            " extractor settings; `whaleid index rebuild` extracts them from the stored"
            " photo files"
        )
    return EXIT_OK
