"""The commands that identify: identify photos, evaluate on labelled manifests."""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from tqdm import tqdm

from service.cli._data import opened_gallery
from service.cli._exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, fail
from service.cli._output import print_identification, progress_bar
from service.config import Settings
from service.photo_sources import read_entries, read_photos

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from indexer.gallery import Gallery
    from indexer.results import Identification

__all__ = ["evaluate", "identify"]

# Rejections that mean the file itself is unusable (exit 1), unlike an answer about the
# photo's content (no cetacean, too little texture).
_UNREADABLE = {"corrupted_image", "unsupported_format", "too_large"}


def identify(args: argparse.Namespace, settings: Settings) -> int:
    """Identify each photo through the same pipeline as the service; `--json` prints
    exactly the HTTP answer, `--out` appends it to a file (see `_identify_into`). A
    rejected photo is an answer, not a failure; a file that cannot be read, or is no
    usable photo, makes the exit code 1 (said on stderr), and the others still run."""
    if not args.images and args.source is None:
        args.parser.print_usage(sys.stderr)
        return fail("identify: name photos, or give --from MANIFEST_OR_FOLDER", EXIT_USAGE)
    if args.ray is not None and args.out is None:
        args.parser.print_usage(sys.stderr)
        return fail("identify: --ray writes its answers to a file: give --out FILE", EXIT_USAGE)
    photos: list[Path] = list(args.images)
    if args.source is not None:
        photos += read_photos(args.source)
    if args.out is not None:
        return _identify_into(args.out, photos, args.top_k, settings, args.ray)
    failed = False
    with opened_gallery(settings) as gallery:
        for path in photos:
            answer = _answer(gallery, path, args.top_k)
            failed |= answer is None or answer.rejection_reason in _UNREADABLE
            if answer is None:
                continue
            if args.json:
                sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
            else:
                print_identification(path, answer, sys.stdout)
    return EXIT_FAILED if failed else EXIT_OK


def _identify_into(
    out: Path, photos: list[Path], top_k: int | None, settings: Settings, address: str | None
) -> int:
    """Append one JSON answer per line to `out` (JSON Lines; `image` names the photo as
    given). A run that stops, however it stops, is resumed by running it again: photos
    already answered in `out` are skipped, and a line torn by a crash is dropped. With
    `address`, the photos are identified on that Ray cluster's workers."""
    answered = _answered(out)
    todo = [path for path in photos if str(path) not in answered]
    failed = False
    with (
        opened_gallery(settings) as gallery,
        out.open("a", encoding="utf-8") as lines,
        tqdm(
            total=len(photos),
            initial=len(photos) - len(todo),
            desc="identify",
            unit="photo",
            file=sys.stderr,
        ) as bar,
    ):
        if address is None:
            answers = (_answer(gallery, path, top_k) for path in todo)
        else:
            gallery.save()  # the workers load the index as this process has it
            answers = _answers_on_cluster(todo, top_k, settings, address)
        for answer in answers:
            failed |= answer is None or answer.rejection_reason in _UNREADABLE
            if answer is not None:
                # One write and a flush per answer: a crash loses at most the photo in hand.
                lines.write(msgspec.json.encode(answer).decode() + "\n")
                lines.flush()
            bar.update()
    print(f"{len(todo)} identified, {len(photos) - len(todo)} already in {out}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _answers_on_cluster(
    photos: list[Path], top_k: int | None, settings: Settings, address: str
) -> Iterator[Identification | None]:
    """`_answer` for each photo, in order, computed on the Ray cluster at `address`."""
    from cluster.batches import run_on_actors  # Ray is an optional extra
    from cluster.session import connected
    from service.cluster_jobs import Unreadable, identify_job

    with connected(address) as cpus:
        job = partial(identify_job, settings, top_k)
        for data in run_on_actors([str(path) for path in photos], job, cpus):
            answer = pickle.loads(data)
            if isinstance(answer, Unreadable):
                print(f"whaleid: {answer.message}", file=sys.stderr)
                yield None
            else:
                yield answer


def _answered(out: Path) -> set[str]:
    """The photos `out` already answers; a torn last line is cut off the file."""
    try:
        data = out.read_bytes()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise CommandError(f"cannot read {out}: {exc.strerror or exc}") from exc
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with out.open("r+b") as f:
            f.truncate(len(complete))
            os.fsync(f.fileno())
    names = set()
    for number, line in enumerate(complete.splitlines(), start=1):
        try:
            names.add(msgspec.json.decode(line, type=_Answered).image)
        except msgspec.DecodeError as exc:
            raise CommandError(f"{out}, line {number}: not a whaleid answer ({exc})") from exc
    return names


class _Answered(msgspec.Struct):
    image: str


def _answer(gallery: Gallery, path: Path, top_k: int | None) -> Identification | None:
    """The pipeline's answer for one photo file; None (said on stderr) when the file
    cannot be read."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        print(f"whaleid: {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    return gallery.pipeline.identify(content, name=str(path), top_k=top_k)


def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the leave-one-out protocol of ../shared/data/README.md on manifests, enrolled
    together as one gallery."""
    from evaluation.leave_one_out import evaluate  # the evaluation harness is not needed elsewhere
    from service.opening import load_configured_models

    entries = [entry for source in args.manifest for entry in read_entries(source)]
    distractors = [entry for source in args.distractors for entry in read_entries(source)]
    settings = msgspec.structs.replace(
        settings,
        locator=settings.locator and not args.no_locator,
        lite0_embedding=settings.lite0_embedding and not args.no_lite0_embedding,
    )
    models = load_configured_models(settings, args.models)
    with progress_bar("evaluate", "query") as progress:
        report = evaluate(
            entries,
            features=settings.features.keypoints(),
            engine=settings.engine,
            open_set=args.open_set,
            seed=args.seed,
            embedder=models.embedder,
            gate=models.gate,
            locator=models.locator,
            distractors=distractors,
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
