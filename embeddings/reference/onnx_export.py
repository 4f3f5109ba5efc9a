"""Export the reference torch networks to ONNX model folders for serving.

Each folder gets the network(s), the files they need and a `model.json` card with every
file's size and sha256. The folder is assembled beside its destination and swapped in at
the end, so an interrupted export leaves the previous model in place, never a mix.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embeddings.arcface import ARCFACE_MODEL, NETWORK_FILE
from embeddings.gate import DEFAULT_THRESHOLD, GATE_MODEL, IMAGE_FILE, PROMPTS_FILE, prompts
from embeddings.model_files import FileEntry, ModelCard, sha256_of, write_card
from embeddings.reference.clip_vit import CONTEXT_LENGTH, Clip
from embeddings.reference.clip_vit import INPUT_SIZE as CLIP_SIZE
from embeddings.reference.efficientnet import INPUT_SIZE as ARCFACE_SIZE
from embeddings.reference.efficientnet import ArcFaceNet

__all__ = ["embed_prompts", "export_arcface", "export_clip_gate"]

OPSET = 17


def export_arcface(
    net: ArcFaceNet, out: Path, *, source: str, checkpoint_sha256: str | None = None
) -> ModelCard:
    """Write the embedding network. The centroids stay out: `whaleid index
    import-centroids` puts them into the gallery, and refuses a checkpoint whose sha256
    differs from the `checkpoint_sha256` recorded here."""

    def write(folder: Path) -> dict[str, object]:
        _to_onnx(net, (1, 3, ARCFACE_SIZE, ARCFACE_SIZE), folder / NETWORK_FILE, "embedding")
        return {
            "input_size": ARCFACE_SIZE,
            "embedding_dim": int(net.embedding.out_features),
            "checkpoint_sha256": checkpoint_sha256,
        }

    return _assemble(out, ARCFACE_MODEL, source, write)


def export_clip_gate(
    clip: Clip, out: Path, *, source: str, threshold: float = DEFAULT_THRESHOLD
) -> ModelCard:
    """Write the image tower, the prompts' text embeddings and the threshold."""
    items = prompts()

    def write(folder: Path) -> dict[str, object]:
        _to_onnx(clip.visual, (1, 3, CLIP_SIZE, CLIP_SIZE), folder / IMAGE_FILE, "embedding")
        np.save(folder / PROMPTS_FILE, embed_prompts(clip, [p.tokens for p in items]))
        return {
            "threshold": threshold,
            "prompts": [p.text for p in items],
            "cetacean": [p.cetacean for p in items],
        }

    return _assemble(out, GATE_MODEL, source, write)


def embed_prompts(clip: Clip, token_lists: list[list[int]]) -> np.ndarray:
    """(P, 512) float32 unit text embeddings of unpadded token id lists."""
    tokens = torch.zeros(len(token_lists), CONTEXT_LENGTH, dtype=torch.long)
    for row, ids in zip(tokens, token_lists, strict=True):
        row[: len(ids)] = torch.tensor(ids[:CONTEXT_LENGTH])
    with torch.no_grad():
        return clip.encode_text(tokens).numpy().astype(np.float32)


def _to_onnx(net: nn.Module, shape: tuple[int, ...], path: Path, output: str) -> None:
    net.eval()
    # The TorchScript exporter, deprecated but still shipped: the dynamo one needs
    # onnxscript and gives nothing this plain convolution/attention graph needs.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.zeros(shape),),
            str(path),
            input_names=["image"],
            output_names=[output],
            dynamic_axes={"image": {0: "batch"}, output: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _assemble(
    out: Path, name: str, source: str, write: Callable[[Path], dict[str, object]]
) -> ModelCard:
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    params = write(partial)
    files = {
        p.name: FileEntry(size=p.stat().st_size, sha256=sha256_of(p))
        for p in sorted(partial.iterdir())
    }
    # The version names the exported files: two exports of the same checkpoint agree,
    # and embeddings of different weights are never mixed in one index.
    version = hashlib.sha256("".join(f.sha256 for f in files.values()).encode()).hexdigest()[:12]
    card = ModelCard(name=name, version=version, source=source, files=files, params=params)
    write_card(partial, card)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)
    return card
