"""Which deep models are installed: the model folders under one models directory, and
the Lite0 gate built in the data folder.

    models/
      arcface-effb4/   model.json, arcface.onnx            (identification embedder)
      clip-gate/       model.json, image.onnx, prompts.npy (cetacean gate)
    <data_dir>/models/lite0/  model.json, model.onnx       (default gate, `whaleid models install`)

A model whose folder is absent is simply not loaded: identification then runs
weight-free, and every answer says so. The gate is the CLIP gate when it is installed,
else the Lite0 gate when it has been built in the data folder. A folder that is present
must be complete and intact; anything else is a `ModelFileError` naming the file, raised
at start-up rather than on the first photo.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from embeddings.arcface import ARCFACE_MODEL, ArcFaceEmbedder
from embeddings.gate import GATE_MODEL, ClipGate
from embeddings.lite0 import Lite0Gate, lite0_folder

__all__ = ["LoadedModels", "load_models"]


class LoadedModels(msgspec.Struct, frozen=True, kw_only=True):
    embedder: ArcFaceEmbedder | None = None
    gate: ClipGate | Lite0Gate | None = None

    @property
    def names(self) -> list[str]:
        """name-version of each loaded model."""
        return [f"{m.name}-{m.version}" for m in (self.embedder, self.gate) if m is not None]


def load_models(
    models_dir: Path | str | None, threads: int = 0, *, data_dir: Path | str | None = None
) -> LoadedModels:
    """Load the models installed under `models_dir` (which may not exist; None or ""
    loads none) and, without a CLIP gate there, the Lite0 gate built in `data_dir`.

    Raises:
        ModelFileError: an installed model's file is missing, truncated or altered.
    """
    models_dir = Path(models_dir) if models_dir else None
    arcface = models_dir / ARCFACE_MODEL if models_dir else None
    clip = models_dir / GATE_MODEL if models_dir else None
    lite0 = lite0_folder(data_dir) if data_dir else None
    gate: ClipGate | Lite0Gate | None = None
    if clip is not None and clip.is_dir():
        gate = ClipGate(clip, threads)
    elif lite0 is not None and lite0.is_dir():
        gate = Lite0Gate(lite0, threads)
    return LoadedModels(
        embedder=ArcFaceEmbedder(arcface, threads) if arcface and arcface.is_dir() else None,
        gate=gate,
    )
