"""Which deep models are installed: the model folders under one models directory.

    models/
      arcface-effb4/   model.json, arcface.onnx            (identification embedder)
      clip-gate/       model.json, image.onnx, prompts.npy (cetacean gate)

A model whose folder is absent is simply not loaded: identification then runs
weight-free, and every answer says so. A folder that is present must be complete and
intact; anything else is a `ModelFileError` naming the file, raised at start-up rather
than on the first photo.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from embeddings.arcface import ARCFACE_MODEL, ArcFaceEmbedder
from embeddings.gate import GATE_MODEL, ClipGate

__all__ = ["LoadedModels", "load_models"]


class LoadedModels(msgspec.Struct, frozen=True, kw_only=True):
    embedder: ArcFaceEmbedder | None = None
    gate: ClipGate | None = None

    @property
    def names(self) -> list[str]:
        """name-version of each loaded model."""
        return [f"{m.name}-{m.version}" for m in (self.embedder, self.gate) if m is not None]


def load_models(models_dir: Path | str | None, threads: int = 0) -> LoadedModels:
    """Load the models installed under `models_dir` (which may not exist; None or ""
    loads none).

    Raises:
        ModelFileError: an installed model's file is missing, truncated or altered.
    """
    if not models_dir:
        return LoadedModels()
    models_dir = Path(models_dir)
    arcface = models_dir / ARCFACE_MODEL
    gate = models_dir / GATE_MODEL
    return LoadedModels(
        embedder=ArcFaceEmbedder(arcface, threads) if arcface.is_dir() else None,
        gate=ClipGate(gate, threads) if gate.is_dir() else None,
    )
