"""The photos a client uploads: their bytes and the file names sent with them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PhotoSource", "aread_photo", "batch_names", "photo_name", "read_photo"]

PhotoSource = bytes | Path
"""A photo to upload: its file's bytes, or the path of the file."""


def photo_name(photo: PhotoSource, name: str | None, default: str) -> str:
    if name is not None:
        return name
    return photo.name if isinstance(photo, Path) else default


def read_photo(photo: PhotoSource) -> bytes:
    return photo.read_bytes() if isinstance(photo, Path) else bytes(photo)


async def aread_photo(photo: PhotoSource) -> bytes:
    if isinstance(photo, Path):
        # File reads block; keep them off the event loop.
        return await asyncio.to_thread(photo.read_bytes)
    return bytes(photo)


def batch_names(photos: Sequence[PhotoSource]) -> list[str]:
    return [photo_name(photo, None, f"photo-{i}") for i, photo in enumerate(photos)]
