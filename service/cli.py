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
from embeddings.photo import ImageError
from indexer.manifest import ManifestEntry, ManifestError, read_entries
from indexer.store import StoreError
from service.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from indexer.gallery import Gallery
    from indexer.results import Identification

__all__ = ["main"]

MAX_TOP_K = 50
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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
        result = gallery.enrol(
            photo, entry.individual_id, species=entry.species, source_name=entry.path.name
        )
    except ImageError as exc:
        tqdm.write(f"failed: {entry.path}: {exc.reason}: {exc.message}", file=sys.stderr)
        return "failed"
    return "enrolled" if result.created else "duplicates"


def _identify(args: argparse.Namespace, settings: Settings) -> int:
    """Identify each photo; a bad photo is reported and the others still run."""
    failed = False
    with _gallery(settings) as gallery:
        for path in args.images:
            try:
                photo = load_photo_file(path, max_pixels=settings.max_image_pixels)
            except ImageError as exc:
                failed = True
                _print_rejected(path, exc, as_json=args.json)
                continue
            answer = gallery.identify(photo, top_k=args.top_k)
            if args.json:
                line = {"image": str(path), **msgspec.to_builtins(answer)}
                sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
            else:
                _print_identification(path, answer, sys.stdout)
    return EXIT_FAILED if failed else EXIT_OK


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the derived search index from the database."""
    with _gallery(settings) as gallery, _progress("rebuild", "image") as progress:
        gallery.rebuild(progress=progress)
    print(f"index rebuilt in {settings.data_dir}")
    return EXIT_OK


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the leave-one-out protocol of ../shared/data/README.md on manifests, enrolled
    together as one gallery."""
    from indexer.evaluate import evaluate  # the evaluation harness is not needed elsewhere

    entries = [entry for source in args.manifest for entry in read_entries(source)]
    with _progress("evaluate", "query") as progress:
        report = evaluate(
            entries,
            features=settings.features,
            engine=settings.engine,
            open_set=args.open_set,
            seed=args.seed,
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
        f"  queries {report.n_queries}  query p50 {report.query_ms_p50:.1f} ms  -> {out}"
    )
    return EXIT_OK


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP service until interrupted."""
    import uvicorn

    from service.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = msgspec.structs.replace(settings, **overrides)
    uvicorn.run(
        create_app(settings),
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
    ]
    for label, value in rows:
        print(f"{label:<12} {value}")
    if stats.images < stats.stored_images:
        print(
            f"{stats.stored_images - stats.images} photos have no features of the current"
            " extractor settings; enrol their files again to make them searchable"
        )
    return EXIT_OK


# ---------------------------------------------------------------------- output


def _print_rejected(path: Path, exc: ImageError, *, as_json: bool) -> None:
    if as_json:
        line = {
            "image": str(path),
            "decision": "rejected",
            "rejection_reason": exc.reason,
            "detail": exc.message,
        }
        sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
    else:
        print(f"{path}: rejected ({exc.reason}): {exc.message}")


def _print_identification(path: Path, answer: Identification, out: TextIO) -> None:
    """Print a decision and its candidates as an aligned table."""
    total = sum(answer.timings_ms.values())
    calibration = "" if answer.calibrated else ", uncalibrated"
    print(
        f"{path}: {answer.decision.replace('_', ' ')}"
        f" ({answer.extractor}{calibration}, {total:.0f} ms)",
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


def _open_gallery(settings: Settings) -> Gallery:
    """Open the gallery; a missing or stale index is rebuilt first, with a progress bar."""
    from indexer.gallery import Gallery  # loads FAISS; only the commands that search pay

    data_dir = Path(settings.data_dir)
    try:
        with _progress("index", "image") as progress:
            return Gallery.open(
                data_dir, features=settings.features, engine=settings.engine, progress=progress
            )
    except OSError as exc:  # e.g. the data folder is a file, or not writable
        raise CommandError(
            f"cannot open the data folder {data_dir}: {exc.strerror or exc}"
        ) from exc


@contextmanager
def _gallery(settings: Settings) -> Iterator[Gallery]:
    gallery = _open_gallery(settings)
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
        "rebuild", parents=[common], help="rebuild the index from the database"
    )
    rebuild.set_defaults(command=_rebuild)

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
        "--json", type=Path, required=True, metavar="OUT", help="write the full report here"
    )
    evaluate.set_defaults(command=_evaluate)

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default: settings.host)")
    serve.add_argument("--port", type=_port, help="listen port (default: settings.port)")
    serve.set_defaults(command=_serve)

    stats = commands.add_parser("stats", parents=[common], help="count what the gallery holds")
    stats.set_defaults(command=_stats)
    return parser


if __name__ == "__main__":
    sys.exit(main())
