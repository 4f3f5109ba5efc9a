"""Model folders: what a model is made of, and checking that its files are the right ones.

An exported model lives in one folder with a `model.json` (`ModelCard`) naming its files
with their size and sha256, its version and where its weights came from. Loading checks
every file against the card first, so a missing, truncated or swapped file is reported by
name instead of failing deep inside ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec

__all__ = [
    "CARD_FILE",
    "FileEntry",
    "ModelCard",
    "ModelFileError",
    "read_card",
    "sha256_of",
    "write_card",
]

CARD_FILE = "model.json"


class ModelFileError(Exception):
    """A model file is missing, damaged or not what its card says."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class FileEntry(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    sha256: str


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    """`model.json` of a model folder.

    Attributes:
        name: what the model is ("arcface-effb4", "clip-gate").
        version: stored beside every embedding it makes, so embeddings of different
            weights are never compared.
        source: the checkpoint it was exported from ("random" for benchmark models).
        files: every file of the folder the model needs, by name.
        params: model-specific settings (the gate's threshold and prompts, ...).
    """

    name: str
    version: str
    source: str
    files: dict[str, FileEntry]
    params: dict[str, object] = {}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(folder: Path, name: str) -> ModelCard:
    """The card of the model folder, after checking every file it lists.

    Raises:
        ModelFileError: no readable card, a card for another model, or a listed file that
            is missing, of the wrong size (truncated) or of the wrong sha256.
    """
    card_path = Path(folder) / CARD_FILE
    try:
        card = msgspec.json.decode(card_path.read_bytes(), type=ModelCard)
    except FileNotFoundError as exc:
        raise ModelFileError(card_path, "not found") from exc
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ModelFileError(card_path, f"unreadable model card ({exc})") from exc
    if card.name != name:
        raise ModelFileError(card_path, f"expected model {name!r}, the card says {card.name!r}")
    for file_name, entry in card.files.items():
        path = Path(folder) / file_name
        if Path(file_name).name != file_name:
            raise ModelFileError(card_path, f"file names must be plain names, got {file_name!r}")
        if not path.is_file():
            raise ModelFileError(path, "not found")
        size = path.stat().st_size
        if size != entry.size:
            raise ModelFileError(path, f"{size} bytes, expected {entry.size} (truncated?)")
        if sha256_of(path) != entry.sha256:
            raise ModelFileError(path, "sha256 differs from the model card (damaged or replaced)")
    return card


def write_card(folder: Path, card: ModelCard) -> None:
    """Write `model.json` atomically: a crash leaves the old card or the new one."""
    path = Path(folder) / CARD_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(card)))
    os.replace(tmp, path)
