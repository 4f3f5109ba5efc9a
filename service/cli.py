"""The `whaleid` command line: enrol photos, identify photos, evaluate, serve.

Exit codes: 0 success; 1 bad input (a bad photo source, an unreadable photo, a database
that will not open); 2 a usage or configuration error; 130 interrupted (Ctrl-C).
User errors are one line on stderr, never a traceback.

The engine, the HTTP stack and the evaluation are imported inside the commands that use
them, so `whaleid --help` and argument errors answer without loading FAISS or Litestar.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import msgspec
from tqdm import tqdm

from embeddings.images import load_photo_file
from embeddings.model_files import ModelFileError
from embeddings.photo import ImageError
from indexer.results import MAX_TOP_K
from indexer.store import DATABASE_FILE, InvalidInput, StoreError
from service.config import ConfigError, Settings, load_settings
from service.photo_sources import ManifestEntry, ManifestError, read_entries

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from embeddings.registry import LoadedModels
    from indexer.gallery import Gallery
    from indexer.results import Identification
    from indexer.store import Store

__all__ = ["main"]

# Photos named in a summary line; the rest are counted.
_SHOWN = 5
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Rejections that mean the file itself is unusable (exit 1), unlike an answer about the
# photo's content (no cetacean, too little texture).
_UNREADABLE = {"corrupted_image", "unsupported_format", "too_large"}

Command = Callable[[argparse.Namespace, Settings], int]


class CommandError(Exception):
    """A user error found by a command; `main` prints it and exits 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `whaleid` command.

    Args:
        argv: the arguments after the program name; None for `sys.argv[1:]`.

    Returns:
        The exit code (see the module docstring).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command: Command = args.command
    try:
        settings = load_settings(args.config)
        if args.data is not None:
            settings = msgspec.structs.replace(settings, data_dir=str(args.data))
        return command(args, settings)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", EXIT_USAGE)
    except CommandError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except ManifestError as exc:
        return _fail(f"bad photo source: {exc}", EXIT_FAILED)
    except StoreError as exc:
        return _fail(f"database error: {exc}", EXIT_FAILED)
    except ModelFileError as exc:
        return _fail(f"model error: {exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


# ---------------------------------------------------------------------- commands


def _enrol(args: argparse.Namespace, settings: Settings) -> int:
    """Enrol every labelled photo of a manifest or folder; bad photos are reported and
    skipped, never abort the run."""
    # Read the source before opening the gallery: a typo in the path must not create
    # an empty database as a side effect.
    entries = read_entries(args.source)
    counts = {"enrolled": 0, "duplicates": 0, "failed": 0, "skipped": 0}
    interrupted = False
    gallery = _open_gallery(settings)
    try:
        with tqdm(entries, desc="enrol", unit="photo", file=sys.stderr) as bar:
            for entry in bar:
                counts[_enrol_one(gallery, entry, settings)] += 1
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
        return _fail(f"no photo of {args.source} could be enrolled", EXIT_FAILED)
    return EXIT_OK


def _enrol_one(gallery: Gallery, entry: ManifestEntry, settings: Settings) -> str:
    """Enrol one photo and return which counter it adds to."""
    if not entry.individual_id:
        return "skipped"
    try:
        photo = load_photo_file(entry.path, max_pixels=settings.max_image_pixels)
        result = gallery.catalogue.enrol(
            photo, entry.individual_id, species=entry.species, source_name=entry.path.name
        )
    except ImageError as exc:
        tqdm.write(f"failed: {entry.path}: {exc.reason}: {exc.message}", file=sys.stderr)
        return "failed"
    except InvalidInput as exc:  # e.g. an individual id with a '/'
        tqdm.write(f"failed: {entry.path}: {exc}", file=sys.stderr)
        return "failed"
    return "enrolled" if result.created else "duplicates"


def _identify(args: argparse.Namespace, settings: Settings) -> int:
    """Identify each photo through the same pipeline as the service; `--json` prints
    exactly the HTTP answer. A rejected photo is an answer, not a failure; a file that
    cannot be read at all makes the exit code 1, and the others still run."""
    failed = False
    with _gallery(settings) as gallery:
        for path in args.images:
            try:
                content = path.read_bytes()
            except OSError as exc:
                failed = True
                message = f"cannot read the file: {exc.strerror or exc}"
                answer = gallery.pipeline.rejected(str(path), "corrupted_image", message)
            else:
                answer = gallery.pipeline.identify(content, name=str(path), top_k=args.top_k)
                failed |= answer.rejection_reason in _UNREADABLE
            if args.json:
                sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
            else:
                _print_identification(path, answer, sys.stdout)
    return EXIT_FAILED if failed else EXIT_OK


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Give stored photos the features of the current extractor settings and models,
    from their stored files, then rebuild the derived search index from the database."""
    with _gallery(settings) as gallery:
        with _progress("re-extract", "photo") as progress:
            done = gallery.catalogue.reextract(progress)
        with _progress("rebuild", "image") as progress:
            gallery.rebuild(progress=progress)
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


def _import_centroids(args: argparse.Namespace, settings: Settings) -> int:
    """Put the ArcFace class centroids of the installed embedder's checkpoint into the
    gallery, so its individuals are found beside the enrolled ones."""
    from embeddings.model_files import sha256_of
    from indexer.centroids import read_centroids

    with _gallery(settings) as gallery:
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


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the leave-one-out protocol of ../shared/data/README.md on manifests, enrolled
    together as one gallery."""
    from evaluation.leave_one_out import evaluate  # the evaluation harness is not needed elsewhere

    entries = [entry for source in args.manifest for entry in read_entries(source)]
    from embeddings.registry import load_models

    models = load_models(args.models or settings.models_dir, settings.model_threads)
    with _progress("evaluate", "query") as progress:
        report = evaluate(
            entries,
            features=settings.features.keypoints(),
            engine=settings.engine,
            open_set=args.open_set,
            seed=args.seed,
            embedder=models.embedder,
            gate=models.gate,
            progress=progress,
        )
    out: Path = args.json
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(
        f"top1 {report.top1:.3f}  top5 {report.top5:.3f}  map5 {report.map5:.3f}"
        f"  queries {report.n_queries}  query p50 {report.query_ms_p50:.1f} ms"
        f"  ({', '.join(report.stages)})  -> {out}"
    )
    return EXIT_OK


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP service until interrupted."""
    import uvicorn

    from embeddings.registry import load_models
    from service.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = msgspec.structs.replace(settings, **overrides)
    models = load_models(settings.models_dir, settings.model_threads)
    uvicorn.run(
        create_app(settings, models),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
    )
    return EXIT_OK


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print how much the gallery holds."""
    with _gallery(settings) as gallery:
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


def _export(args: argparse.Namespace, settings: Settings) -> int:
    """Write every sighting as CSV or a Darwin Core occurrence table."""
    from indexer.files import replacing
    from indexer.sightings import darwin_core_csv, iter_sightings, sightings_csv

    media_url = None
    if args.base_url is not None:
        from service.routes.catalogue import IMAGE_FILE_PATH

        media_url = args.base_url.rstrip("/") + IMAGE_FILE_PATH
    with _open_store(settings) as store:
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


def _individuals(args: argparse.Namespace, settings: Settings) -> int:
    """List individuals, one per line: id, species, photo count, name."""
    with _open_store(settings) as store:
        offset = 0
        while page := store.list_individuals(args.species, limit=500, offset=offset):
            for row in page:
                print(f"{row.id}\t{row.species or '-'}\t{row.image_count}\t{row.name or ''}")
            offset += len(page)
    return EXIT_OK


def _show(args: argparse.Namespace, settings: Settings) -> int:
    """Print one individual and its photos (sightings)."""
    with _open_store(settings) as store:
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


def _rename(args: argparse.Namespace, settings: Settings) -> int:
    with _gallery(settings) as gallery:
        gallery.catalogue.rename_individual(args.old, args.new)
    print(f"renamed {args.old} to {args.new}")
    return EXIT_OK


def _merge(args: argparse.Namespace, settings: Settings) -> int:
    with _gallery(settings) as gallery:
        moved = gallery.catalogue.merge_individuals(args.source, args.target)
    print(f"merged {args.source} into {args.target}: {moved} photos moved")
    return EXIT_OK


def _delete_individual(args: argparse.Namespace, settings: Settings) -> int:
    with _gallery(settings) as gallery:
        deleted = gallery.catalogue.delete_individual(args.individual)
    print(f"deleted {args.individual} and its {deleted} photos")
    return EXIT_OK


def _delete_image(args: argparse.Namespace, settings: Settings) -> int:
    with _gallery(settings) as gallery:
        if not gallery.catalogue.delete_image(args.image_id):
            raise CommandError(f"image {args.image_id} not found")
    print(f"deleted image {args.image_id}")
    return EXIT_OK


# ---------------------------------------------------------------------- output


def _print_identification(path: Path, answer: Identification, out: TextIO) -> None:
    """Print a decision and its candidates as an aligned table."""
    if answer.decision == "rejected":
        print(f"{path}: rejected ({answer.rejection_reason}): {answer.detail}", file=out)
        return
    total = answer.timings_ms.get("total", 0.0)
    calibration = "" if answer.calibrated else ", uncalibrated"
    extractor = f"{answer.extractor.name}-{answer.extractor.version}"
    print(
        f"{path}: {answer.decision.replace('_', ' ')}"
        f" ({extractor}{calibration}, {total:.0f} ms)",
        file=out,
    )
    if not answer.candidates:
        print("  no candidates (empty gallery, or no markings found in the photo)", file=out)
        return
    header = ("#", "individual", "species", "probability", "score", "evidence")
    rows = [
        (
            str(rank),
            c.individual_id,
            c.species or "-",
            f"{c.probability:.3f}",
            f"{c.score:.0f}",
            f"{c.evidence.source_name} (image {c.evidence.image_id}, {c.evidence.inliers} inliers)",
        )
        for rank, c in enumerate(answer.candidates, start=1)
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = {0, 3, 4}  # right-aligned so the decimal points line up
    for row in (header, *rows):
        cells = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  " + "  ".join(cells).rstrip(), file=out)


def _fail(message: str, code: int) -> int:
    print(f"whaleid: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------- plumbing


def _open_gallery(settings: Settings, models: LoadedModels | None = None) -> Gallery:
    """Open the gallery with the deep embedder of `models` (loaded from the settings when
    not given); a missing or stale index is rebuilt first, with a progress bar."""
    from embeddings.registry import load_models
    from indexer.gallery import Gallery  # loads FAISS; only the commands that search pay

    data_dir = Path(settings.data_dir)
    if models is None:
        models = load_models(settings.models_dir, settings.model_threads)
    try:
        with _progress("index", "image") as progress:
            return Gallery.open(
                data_dir,
                features=settings.features.keypoints(),
                engine=settings.engine,
                embedder=models.embedder,
                gate=models.gate,
                max_pixels=settings.max_image_pixels,
                progress=progress,
            )
    except OSError as exc:  # e.g. the data folder is a file, or not writable
        raise CommandError(
            f"cannot open the data folder {data_dir}: {exc.strerror or exc}"
        ) from exc


def _open_store(settings: Settings) -> Store:
    """The database alone, for commands that only read or list (no index is loaded)."""
    from indexer.store import Store

    path = Path(settings.data_dir) / DATABASE_FILE
    if not path.exists():
        raise CommandError(f"no catalogue in {settings.data_dir} (nothing enrolled yet)")
    return Store.open(path)


@contextmanager
def _gallery(settings: Settings, models: LoadedModels | None = None) -> Iterator[Gallery]:
    gallery = _open_gallery(settings, models)
    try:
        yield gallery
    finally:
        gallery.close()


@contextmanager
def _progress(desc: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback drawing a tqdm bar on stderr.

    The bar appears on the first call only, so work that turns out to be unnecessary
    (an index that is already current) leaves no empty bar behind.
    """
    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, unit=unit, total=total, file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def _top_k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_TOP_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_TOP_K}, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    # The shared options sit on every leaf command, not on the top-level parser:
    # argparse lets a sub-parser's default overwrite a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="data folder (default: WHALEID_DATA, the config file, or ./whaleid-data)",
    )
    common.add_argument(
        "--config", type=Path, metavar="TOML", help="settings file (default: WHALEID_CONFIG)"
    )

    parser = argparse.ArgumentParser(
        prog="whaleid",
        description="Photo-identification of individual whales and dolphins.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    enrol = commands.add_parser(
        "enrol",
        parents=[common],
        help="add labelled photos to the gallery",
        description="Enrol photos from a manifest CSV (path,individual_id,species) or a"
        " folder with one sub-folder per individual.",
    )
    enrol.add_argument("source", type=Path, metavar="SOURCE", help="manifest .csv or folder")
    enrol.set_defaults(command=_enrol)

    identify = commands.add_parser(
        "identify", parents=[common], help="identify individuals in photos"
    )
    identify.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    identify.add_argument(
        "--top-k",
        type=_top_k,
        metavar="N",
        help=f"candidates to show, 1-{MAX_TOP_K} (default: engine.top_k)",
    )
    identify.add_argument("--json", action="store_true", help="one JSON object per line")
    identify.set_defaults(command=_identify)

    index = commands.add_parser("index", help="manage the search index")
    index_commands = index.add_subparsers(title="index commands", metavar="COMMAND", required=True)
    rebuild = index_commands.add_parser(
        "rebuild",
        parents=[common],
        help="re-extract missing features from the stored photos and rebuild the index",
        description="Give every stored photo the features of the current [features]"
        " settings and installed models, extracted from its stored file, then rebuild the"
        " search index and refit the calibration. Photos enrolled before photo files were"
        " kept are reported: enrol their files again.",
    )
    rebuild.set_defaults(command=_rebuild)
    centroids = index_commands.add_parser(
        "import-centroids",
        parents=[common],
        help="import the ArcFace centroids of the installed embedder's checkpoint",
    )
    centroids.add_argument("checkpoint", type=Path, help="the checkpoint (.ckpt) exported")
    centroids.add_argument("classes", type=Path, help="encoder_classes.npy: id of each row")
    centroids.add_argument("species_map", type=Path, help="CSV with individual_id,species")
    centroids.set_defaults(command=_import_centroids)

    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="measure accuracy on a labelled manifest",
        description="Leave-one-out identification accuracy (top-1, top-5, MAP@5) on one or"
        " more manifests enrolled together, in a temporary gallery; the data folder is not"
        " touched.",
    )
    evaluate.add_argument("manifest", type=Path, nargs="+", metavar="MANIFEST")
    evaluate.add_argument(
        "--open-set",
        action="store_true",
        help="hold out 20%% of individuals, whose photos must come back as new",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the open-set split")
    evaluate.add_argument(
        "--models",
        type=Path,
        metavar="DIR",
        help="measure with the deep models installed in DIR (default: models_dir)",
    )
    evaluate.add_argument(
        "--json", type=Path, required=True, metavar="OUT", help="write the full report here"
    )
    evaluate.set_defaults(command=_evaluate)

    export = commands.add_parser(
        "export", parents=[common], help="write all sightings as CSV or Darwin Core"
    )
    export.add_argument("--format", choices=("csv", "dwc"), default="csv")
    export.add_argument("--species", help="only individuals of this species")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    export.add_argument(
        "--base-url",
        metavar="URL",
        help="the address `whaleid serve` is reached at, e.g. https://whaleid.example.org:"
        " Darwin Core associatedMedia then links each stored photo file there (without it,"
        " associatedMedia is empty)",
    )
    export.set_defaults(command=_export)

    individual = commands.add_parser(
        "individual",
        help="list, show, rename, merge or delete individuals",
        description="Catalogue edits on the data folder. While `whaleid serve` runs on the"
        " same folder, edit through the HTTP API instead: the server would only see these"
        " edits after a restart.",
    )
    individual_commands = individual.add_subparsers(
        title="individual commands", metavar="COMMAND", required=True
    )
    listing = individual_commands.add_parser("list", parents=[common], help="list individuals")
    listing.add_argument("--species", help="only individuals of this species")
    listing.set_defaults(command=_individuals)
    show = individual_commands.add_parser("show", parents=[common], help="one individual")
    show.add_argument("individual", metavar="ID")
    show.set_defaults(command=_show)
    rename = individual_commands.add_parser("rename", parents=[common], help="change an id")
    rename.add_argument("old", metavar="ID")
    rename.add_argument("new", metavar="NEW_ID")
    rename.set_defaults(command=_rename)
    merge = individual_commands.add_parser(
        "merge", parents=[common], help="move SOURCE's photos to TARGET and delete SOURCE"
    )
    merge.add_argument("source", metavar="SOURCE")
    merge.add_argument("target", metavar="TARGET")
    merge.set_defaults(command=_merge)
    remove = individual_commands.add_parser(
        "delete", parents=[common], help="delete an individual and its photos"
    )
    remove.add_argument("individual", metavar="ID")
    remove.set_defaults(command=_delete_individual)

    image = commands.add_parser("image", help="manage stored photos")
    image_commands = image.add_subparsers(title="image commands", metavar="COMMAND", required=True)
    image_delete = image_commands.add_parser("delete", parents=[common], help="delete a photo")
    image_delete.add_argument("image_id", type=int, metavar="IMAGE_ID")
    image_delete.set_defaults(command=_delete_image)

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default: settings.host)")
    serve.add_argument("--port", type=_port, help="listen port (default: settings.port)")
    serve.set_defaults(command=_serve)

    stats = commands.add_parser("stats", parents=[common], help="count what the gallery holds")
    stats.set_defaults(command=_stats)
    return parser


if __name__ == "__main__":
    sys.exit(main())
