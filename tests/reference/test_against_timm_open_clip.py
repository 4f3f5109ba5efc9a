"""The plain-torch networks equal timm's and open_clip's, weight for weight.

These run only in the reference environment, where timm and open_clip import (torch
2.14.1 with its torchvision, a CUDA build that runs on the CPU here; see the README's
"Reference checks"). They are deselected by default (marker `reference`) and run by CI
in that environment:

    .venv-reference/bin/python -m pytest -m reference tests/reference
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from embeddings.gate import prompts
from embeddings.reference.clip_vit import Clip
from embeddings.reference.efficientnet import EfficientNetB4

pytestmark = pytest.mark.reference

ROOT = Path(__file__).resolve().parents[2]


def _randomise_batch_norm(state: dict[str, torch.Tensor]) -> None:
    # Fresh running statistics are the identity (mean 0, variance 1); random ones check
    # that the statistics are applied at the same place in both implementations.
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 2.0)
        elif key.endswith("running_mean"):
            value.normal_(0.0, 0.1)


def test_efficientnet_b4_equals_timms() -> None:
    import timm

    torch.manual_seed(0)
    reference = timm.create_model(
        "efficientnet_b4", pretrained=False, num_classes=0, global_pool=""
    ).eval()
    state = reference.state_dict()
    _randomise_batch_norm(state)
    reference.load_state_dict(state)
    ours = EfficientNetB4().eval()

    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }
    ours.load_state_dict(state, strict=True)
    for size in (224, 512):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_clip_vit_b32_equals_open_clips() -> None:
    import open_clip

    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    state = reference.state_dict()
    ours = Clip().eval()

    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }
    ours.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, 224, 224)
    tokens = open_clip.get_tokenizer("ViT-B-32")([p.text for p in prompts()[:4]])
    with torch.no_grad():
        assert torch.allclose(
            ours.visual(images), reference.encode_image(images, normalize=True), atol=1e-5
        )
        assert torch.allclose(
            ours.encode_text(tokens), reference.encode_text(tokens, normalize=True), atol=1e-5
        )


def test_stored_prompt_tokens_are_open_clips_tokenization() -> None:
    spec = importlib.util.spec_from_file_location(
        "tokenize_prompts", ROOT / "scripts" / "tokenize_prompts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    stored = json.loads((ROOT / "embeddings" / "gate_prompts.json").read_text())

    assert stored == module.tokenized()
