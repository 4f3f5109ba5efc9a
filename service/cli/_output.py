"""What the commands print: the identification table and the progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from indexer.results import Identification, Progress, Stages

__all__ = ["print_identification", "progress_bar", "stage_bars"]


def print_identification(path: Path, answer: Identification, out: TextIO) -> None:
    """Print a decision and its candidates as an aligned table."""
    if answer.decision == "rejected":
        print(f"{path}: rejected ({answer.rejection_reason}): {answer.detail}", file=out)
        return
    total = answer.timings_ms.get("total", 0.0)
    calibration = "" if answer.calibrated else ", uncalibrated"
    extractor = f"{answer.extractor.name}-{answer.extractor.version}"
    print(
        f"{path}: {answer.decision.replace('_', ' ')} ({extractor}{calibration}, {total:.0f} ms)",
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


@contextmanager
def progress_bar(desc: str, unit: str) -> Iterator[Progress]:
    """A `progress(done, total)` callback drawing a tqdm bar on stderr.

    The bar appears on the first call only, so work that turns out to be unnecessary
    (an index that is already current) leaves no empty bar behind, and is closed once
    full, so that it is drawn full before whatever comes next (progress after that
    starts a new bar). Work that reports a total of 0 (no progress of its own) gets
    `desc` as a line instead.

    Args:
        desc: what the bar counts.
        unit: its unit.
    """
    bars: list[tqdm] = []
    said: list[str] = []

    def update(done: int, total: int) -> None:
        if total == 0:
            if not said:
                said.append(desc)
                tqdm.write(desc, file=sys.stderr)
            return
        if not bars:
            bars.append(tqdm(desc=desc, unit=unit, total=total, file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bars.pop().close()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


@contextmanager
def stage_bars(unit: str) -> Iterator[Stages]:
    """A `stages(stage)` callback giving each stage of long work its own `progress_bar`,
    the stage before it closed.

    Args:
        unit: what every stage counts.
    """
    with ExitStack() as bars:

        def stage(name: str) -> Progress:
            bars.close()  # an ExitStack is emptied by closing, and takes new contexts
            return bars.enter_context(progress_bar(name, unit))

        yield stage
