"""Which deep models are installed: the model folders under one models directory, and
the Lite0 network built in the data folder.

    models/
      arcface-effb4/   model.json, arcface.onnx            (identification embedder)
      clip-gate/       model.json, image.onnx, prompts.npy (cetacean gate)
    <data_dir>/models/lite0/  model.json, model.onnx       (default gate, locator and
                                                            embedding: `whaleid models install`)

A model whose folder is absent is simply not loaded: identification then runs
weight-free, and every answer says so. The gate is the CLIP gate when it is installed,
else the Lite0 gate when Lite0 has been built in the data folder; the deep embedder is
ArcFace when installed, else Lite0's pooled features if the settings ask for them. A
folder that is present must be complete and intact; anything else is a `ModelFileError`
naming the file, raised at start-up rather than on the first photo.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from embeddings.arcface import ARCFACE_MODEL, ArcFaceEmbedder
from embeddings.gate import GATE_MODEL, ClipGate
from embeddings.keypoints import KeypointConfig
from embeddings.lite0 import Lite0Embedder, Lite0Gate, Lite0Net, lite0_folder
from embeddings.locator import Lite0Locator

__all__ = ["LoadedModels", "load_models"]


class LoadedModels(msgspec.Struct, frozen=True, kw_only=True):
    embedder: ArcFaceEmbedder | Lite0Embedder | None = None
    gate: ClipGate | Lite0Gate | None = None
    locator: Lite0Locator | None = None

    @property
    def names(self) -> list[str]:
        """name-version of each loaded model."""
        models = (self.embedder, self.gate, self.locator)
        return [f"{m.name}-{m.version}" for m in models if m is not None]


def load_models(
    models_dir: Path | str | None,
    threads: int = 0,
    *,
    data_dir: Path | str | None = None,
    locate: bool = True,
    lite0_embedding: bool = True,
    features: KeypointConfig | None = None,
) -> LoadedModels:
    """Load the models installed under `models_dir` (which may not exist; None or ""
    loads none) and those of the Lite0 network built in `data_dir`: its gate unless a
    CLIP gate is installed, its locator (`locate`), and its embedding when no ArcFace
    model is installed and `lite0_embedding` asks for it (for photos larger than the
    working size: whole frames).

    Args:
        features: the local features' settings; photos no larger than their working
            size are not located (see `embeddings.locator`).

    Raises:
        ModelFileError: an installed model's file is missing, truncated or altered.
    """
    models_dir = Path(models_dir) if models_dir else None
    arcface = models_dir / ARCFACE_MODEL if models_dir else None
    clip = models_dir / GATE_MODEL if models_dir else None
    folder = lite0_folder(data_dir) if data_dir else None
    net = Lite0Net(folder, threads) if folder is not None and folder.is_dir() else None
    gate: ClipGate | Lite0Gate | None = None
    if clip is not None and clip.is_dir():
        gate = ClipGate(clip, threads)
    elif net is not None:
        gate = Lite0Gate(net)
    # Photos no larger than the local features' working size are crops already: the
    # locator leaves them whole and the Lite0 embedding leaves them to their markings.
    working = (features or KeypointConfig()).long_side
    embedder: ArcFaceEmbedder | Lite0Embedder | None = None
    if arcface is not None and arcface.is_dir():
        embedder = ArcFaceEmbedder(arcface, threads)
    elif net is not None and lite0_embedding:
        embedder = Lite0Embedder(net, crop_side=working)
    locator = None
    if net is not None and locate:
        locator = Lite0Locator(net, whole_below=working, min_side=working)
    return LoadedModels(embedder=embedder, gate=gate, locator=locator)
