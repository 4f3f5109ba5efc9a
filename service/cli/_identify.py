"""The commands that identify: identify photos, evaluate on labelled manifests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from service.cli._data import opened_gallery
from service.cli._exits import EXIT_FAILED, EXIT_OK, CommandError
from service.cli._output import print_identification, progress_bar
from service.config import Settings
from service.photo_sources import read_entries

__all__ = ["evaluate", "identify"]

# Rejections that mean the file itself is unusable (exit 1), unlike an answer about the
# photo's content (no cetacean, too little texture).
_UNREADABLE = {"corrupted_image", "unsupported_format", "too_large"}


def identify(args: argparse.Namespace, settings: Settings) -> int:
    """Identify each photo through the same pipeline as the service; `--json` prints
    exactly the HTTP answer. A rejected photo is an answer, not a failure; a file that
    cannot be read, or is no usable photo, makes the exit code 1 (said on stderr), and
    the others still run."""
    failed = False
    with opened_gallery(settings) as gallery:
        for path in args.images:
            try:
                content = path.read_bytes()
            except OSError as exc:
                failed = True
                print(f"whaleid: {path}: {exc.strerror or exc}", file=sys.stderr)
                continue
            answer = gallery.pipeline.identify(content, name=str(path), top_k=args.top_k)
            failed |= answer.rejection_reason in _UNREADABLE
            if args.json:
                sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
            else:
                print_identification(path, answer, sys.stdout)
    return EXIT_FAILED if failed else EXIT_OK


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
