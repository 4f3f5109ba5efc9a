"""What the commands print: the identification table and the progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

if TYPE_CHECKING:  # only for annotations: importing the engine loads FAISS
    from indexer.results import Identification

__all__ = ["BUILDING_INDEX", "print_identification", "progress_bar"]

BUILDING_INDEX = (
    "all {total} photos read; building the index now, with no progress shown"
    " (minutes for a catalogue of thousands of photos)"
)
"""Said once an index build has read every photo: training the index's lists and adding
the descriptors, most of a large build's time, report no progress."""


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
def progress_bar(
    desc: str, unit: str, then: str | None = None
) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback drawing a tqdm bar on stderr.

    The bar appears on the first call only, so work that turns out to be unnecessary
    (an index that is already current) leaves no empty bar behind.

    Args:
        desc: what the bar counts.
        unit: its unit.
        then: a line written once the bar is full, for work that goes on without
            progress of its own; `{total}` in it is the bar's total.
    """
    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, unit=unit, total=total, file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        full = bar.n < total <= done
        bar.update(done - bar.n)
        if full and then is not None:
            bar.refresh()
            tqdm.write(then.format(total=total), file=sys.stderr)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
