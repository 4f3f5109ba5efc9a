"""OpenCLIP ViT-B/32 in plain torch: the reference implementation of the cetacean gate.

Module names reproduce open_clip's `ViT-B-32` state dict (the layout of the
`laion2b_s34b_b79k` checkpoint, `open_clip_pytorch_model.bin`), so real weights load with
`strict=True`. Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021; Cherti et al., "Reproducible scaling laws for contrastive
language-image learning", CVPR 2023.

Serving needs only the image tower, exported to ONNX; the text tower runs once, at export
time, to embed the gate's prompts. open_clip is not imported for the same reason as timm
(see `embeddings.reference.efficientnet`); `tests/reference/` checks equality with
open_clip's model.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from embeddings.reference.checkpoints import load_strict, read_state_dict

__all__ = ["CONTEXT_LENGTH", "INPUT_SIZE", "Clip", "load_clip_checkpoint"]

INPUT_SIZE = 224
CONTEXT_LENGTH = 77
EMBED_DIM = 512
_PATCH = 32
_VISION_WIDTH = 768
_TEXT_WIDTH = 512
_VOCAB = 49_408
_LAYERS = 12


class _Attention(nn.Module):
    """Multi-head self-attention with `nn.MultiheadAttention`'s parameter names. Written
    out because that module's fused inference kernel has no ONNX export."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * width, width) * width**-0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * (width // self.heads) ** -0.5) @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        out = scores.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=nn.Linear(width, 4 * width),
                gelu=nn.GELU(),
                c_proj=nn.Linear(4 * width, width),
            )
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_Block(width, heads) for _ in range(_LAYERS))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class ClipVisual(nn.Module):
    """Unit-length (B, 512) embeddings of CLIP-normalised (B, 3, 224, 224) images."""

    def __init__(self) -> None:
        super().__init__()
        tokens = (INPUT_SIZE // _PATCH) ** 2 + 1
        self.conv1 = nn.Conv2d(3, _VISION_WIDTH, _PATCH, _PATCH, bias=False)
        # open_clip's initialisation, so that a model built without a checkpoint (tests,
        # benchmarks) computes with realistic magnitudes.
        scale = _VISION_WIDTH**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(_VISION_WIDTH))
        self.positional_embedding = nn.Parameter(scale * torch.randn(tokens, _VISION_WIDTH))
        self.ln_pre = nn.LayerNorm(_VISION_WIDTH)
        self.transformer = _Transformer(_VISION_WIDTH, _VISION_WIDTH // 64)
        self.ln_post = nn.LayerNorm(_VISION_WIDTH)
        self.proj = nn.Parameter(scale * torch.randn(_VISION_WIDTH, EMBED_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return F.normalize(self.ln_post(x[:, 0]) @ self.proj, dim=1)


class Clip(nn.Module):
    """Both towers, laid out as open_clip's `CLIP` (text tower at the top level)."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = ClipVisual()
        self.token_embedding = nn.Embedding(_VOCAB, _TEXT_WIDTH)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(CONTEXT_LENGTH, _TEXT_WIDTH))
        self.transformer = _Transformer(_TEXT_WIDTH, _TEXT_WIDTH // 64)
        self.ln_final = nn.LayerNorm(_TEXT_WIDTH)
        self.text_projection = nn.Parameter(_TEXT_WIDTH**-0.5 * torch.randn(_TEXT_WIDTH, EMBED_DIM))
        self.logit_scale = nn.Parameter(torch.tensor(0.0))
        causal = torch.full((CONTEXT_LENGTH, CONTEXT_LENGTH), float("-inf")).triu(1)
        self.register_buffer("attn_mask", causal, persistent=False)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unit-length (B, 512) embeddings of (B, 77) BPE token ids (start, text, end, 0s)."""
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.attn_mask))
        # The end-of-text token has the largest id, so argmax finds each prompt's end.
        pooled = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
        return F.normalize(pooled @ self.text_projection, dim=1)


def load_clip_checkpoint(path: Path) -> Clip:
    """The model of an open_clip ViT-B-32 checkpoint, in eval mode.

    Raises:
        ModelFileError: see `embeddings.reference.checkpoints.read_state_dict` and `load_strict`.
    """
    net = Clip()
    load_strict(net, read_state_dict(path), path)
    return net.eval()
