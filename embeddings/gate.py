"""The cetacean gate: is there a whale or dolphin in this photo at all?

Zero-shot CLIP (OpenCLIP ViT-B/32): the photo's embedding is compared with the embeddings
of 10 cetacean and 14 non-cetacean prompts, and the score is the softmax mass of the
cetacean prompts over `100 * cosine` (100 is CLIP's trained logit scale). The prompts
are embedded once, at export time, and stored beside the image tower, so serving runs
only the image tower.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec
import numpy as np

from embeddings.model_files import ModelFileError, read_card
from embeddings.onnx_runtime import OnnxNet
from embeddings.photo import Photo
from embeddings.preprocess import clip_input

__all__ = [
    "GATE_MODEL",
    "ClipGate",
    "GateCheck",
    "Prompt",
    "calibration_note",
    "cetacean_score",
    "prompts",
]

GATE_MODEL = "clip-gate"
IMAGE_FILE = "image.onnx"
PROMPTS_FILE = "prompts.npy"
LOGIT_SCALE = 100.0
DEFAULT_THRESHOLD = 0.5
"""Until `scripts/calibrate_gate.py` writes a fitted one into the model card."""


class Prompt(msgspec.Struct, frozen=True):
    text: str
    cetacean: bool
    tokens: list[int]
    """open_clip's BPE ids: start, the text, end (no padding)."""


class GateCheck(msgspec.Struct, frozen=True, kw_only=True):
    score: float
    """Cetacean prompts' softmax mass, in [0, 1]."""
    threshold: float
    passed: bool


def prompts() -> list[Prompt]:
    """The gate's prompts (`embeddings/gate_prompts.json`, made by
    `scripts/tokenize_prompts.py`)."""
    raw = resources.files("embeddings").joinpath("gate_prompts.json").read_bytes()
    return msgspec.json.decode(raw, type=list[Prompt])


def cetacean_score(images: np.ndarray, text: np.ndarray, cetacean: np.ndarray) -> np.ndarray:
    """Scores (B,) of unit image embeddings (B, D) against unit prompt embeddings (P, D),
    `cetacean` (P,) bool marking the positive prompts."""
    logits = LOGIT_SCALE * images @ text.T
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights[:, cetacean].sum(axis=1) / weights.sum(axis=1)


def calibration_note(params: dict[str, object]) -> str:
    """How a gate's threshold was chosen, from its model card's params."""
    calibrated_on = params.get("calibrated_on")
    if not calibrated_on:
        return "default threshold, not calibrated (scripts/calibrate_gate.py)"
    tpr, tnr = params.get("tpr", float("nan")), params.get("tnr", float("nan"))
    return f"calibrated on {calibrated_on}: TPR {tpr:.3f}, TNR {tnr:.3f}"


class ClipGate:
    """The exported gate of a model folder, run with ONNX Runtime.

    Raises (constructor):
        ModelFileError: a missing, damaged or inconsistent file of the folder.
    """

    name = GATE_MODEL

    def __init__(self, folder: Path, threads: int = 0) -> None:
        card = read_card(folder, GATE_MODEL)
        self.version = card.version
        self.threshold = float(card.params.get("threshold", DEFAULT_THRESHOLD))
        cetacean = card.params.get("cetacean")
        self._text = np.load(Path(folder) / PROMPTS_FILE)
        if not isinstance(cetacean, list) or len(cetacean) != len(self._text):
            raise ModelFileError(
                Path(folder) / "model.json",
                f"params.cetacean must mark each of the {len(self._text)} prompts",
            )
        self._cetacean = np.array(cetacean, dtype=bool)
        self._net = OnnxNet(Path(folder) / IMAGE_FILE, threads)
        self.calibration = calibration_note(card.params)
        """How the threshold was chosen, for /ready."""

    def score(self, photo: Photo) -> float:
        embedding = self._net(clip_input(photo.pixels))
        return float(cetacean_score(embedding, self._text, self._cetacean)[0])

    def check(self, photo: Photo) -> GateCheck:
        score = self.score(photo)
        return GateCheck(score=score, threshold=self.threshold, passed=score >= self.threshold)
