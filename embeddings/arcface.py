"""The deep identification embedder: the exported ArcFace network run with ONNX Runtime."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embeddings.model_files import read_card
from embeddings.onnx_runtime import OnnxNet
from embeddings.photo import Photo
from embeddings.preprocess import arcface_input
from embeddings.protocol import FeatureKind, GlobalEmbedding

__all__ = ["ARCFACE_MODEL", "ArcFaceEmbedder"]

ARCFACE_MODEL = "arcface-effb4"
NETWORK_FILE = "arcface.onnx"


class ArcFaceEmbedder:
    """Photo -> unit 512-d embedding, comparable by cosine with the ArcFace centroids of
    the checkpoint it was exported from.

    Raises (constructor):
        ModelFileError: a missing, damaged or inconsistent file of the folder.
    """

    name = ARCFACE_MODEL
    kind: FeatureKind = "global"
    crop_side = 0

    def __init__(self, folder: Path, threads: int = 0) -> None:
        card = read_card(folder, ARCFACE_MODEL)
        self.version = card.version
        self.dim = int(card.params.get("embedding_dim", 512))  # type: ignore[call-overload]
        checkpoint = card.params.get("checkpoint_sha256")
        self.checkpoint_sha256 = checkpoint if isinstance(checkpoint, str) else None
        """sha256 of the checkpoint it was exported from; its centroids belong with it."""
        self._net = OnnxNet(Path(folder) / NETWORK_FILE, threads)

    def extract(self, photo: Photo) -> GlobalEmbedding:
        return GlobalEmbedding(vector=self.embed([photo.pixels])[0])

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(B, 512) float32 unit rows for a batch of (H, W, 3) uint8 RGB images."""
        batch = np.concatenate([arcface_input(pixels) for pixels in images])
        vectors = self._net(batch)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
