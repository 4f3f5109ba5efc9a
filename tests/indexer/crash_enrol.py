"""Enrol a stream of synthetic photos until killed; the crash test's child process.

    python -m tests.indexer.crash_enrol DATA_DIR FIRST

Prints `index image_id sha256` on stdout, flushed, as each `Gallery.enrol` returns: the
photos it names are acknowledged (committed, file and row). The database is slowed down
(as a busy disk would be), so that a kill often lands between a photo's file and its row.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from embeddings.images import load_photo
from indexer.gallery import Gallery
from indexer.store import Store
from tests.synthetic import encode, sighting


def content(index: int) -> bytes:
    """The `index`-th photo of the stream; the same bytes in every process."""
    return encode(sighting(f"K-{index % 4}", index), "JPEG")


def main(data: Path, first: int) -> None:
    add_image = Store.add_image

    def slow_add_image(self: Store, *args: object, **kwargs: object) -> tuple[int, bool]:
        time.sleep(0.08)
        return add_image(self, *args, **kwargs)  # type: ignore[arg-type]

    Store.add_image = slow_add_image  # type: ignore[method-assign]
    gallery = Gallery.open(data)
    for index in range(first, first + 1000):
        photo = load_photo(content(index))
        result = gallery.catalogue.enrol(photo, f"K-{index % 4}")
        print(index, result.image_id, photo.sha256, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
