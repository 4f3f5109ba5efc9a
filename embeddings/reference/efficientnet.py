"""The ArcFace identification network in plain torch: EfficientNet-B4 + Linear(1792 -> 512).

This is the reference implementation of the deep embedder; serving runs its ONNX export
(`embeddings.arcface`, on `embeddings.onnx_runtime`) and never imports this module or torch.

The module names reproduce two published layouts exactly, so real checkpoints load with
`load_state_dict(strict=True)`:

- the backbone is timm's `efficientnet_b4` created with `num_classes=0, global_pool=''`
  (Tan & Le, "EfficientNet", ICML 2019; width 1.4, depth 1.8, timm's symmetric padding);
- the Happywhale checkpoint wraps it as `model.*`, adds `embedding` (1792 -> 512) and the
  ArcFace class weights `arc.weight` (15 587 x 512; Deng et al., "ArcFace", CVPR 2019).

timm itself is not imported: `import timm` needs torchvision, whose only wheel here is a
CUDA build that fails against the CPU torch. `tests/reference/` checks, in an environment
where timm imports, that this backbone equals timm's `efficientnet_b4` output for output.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from embeddings.model_files import ModelFileError
from embeddings.reference.checkpoints import load_strict, read_state_dict

__all__ = [
    "ARC_CLASSES",
    "EMBEDDING_DIM",
    "INPUT_SIZE",
    "ArcFaceNet",
    "EfficientNetB4",
    "load_arcface_checkpoint",
]

INPUT_SIZE = 512
EMBEDDING_DIM = 512
ARC_CLASSES = 15_587
"""Rows of `arc.weight` in the public checkpoint; `encoder_classes.npy` names the first
13 837 (the individuals it was trained on), the rest are unused."""
_FEATURES = 1792
_STEM = 48
# timm's efficientnet_b4 after width (x1.4, channels rounded to 8) and depth (x1.8,
# rounded up) scaling: (block kind, repeats, kernel, first stride, expansion, channels).
_STAGES = (
    ("ds", 2, 3, 1, 1, 24),
    ("ir", 4, 3, 2, 6, 32),
    ("ir", 4, 5, 2, 6, 56),
    ("ir", 6, 3, 2, 6, 112),
    ("ir", 6, 5, 1, 6, 160),
    ("ir", 8, 5, 2, 6, 272),
    ("ir", 2, 3, 1, 6, 448),
)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.conv_expand(s))


def _depthwise(channels: int, kernel: int, stride: int) -> nn.Conv2d:
    # kernel // 2 is timm's symmetric padding ((stride - 1) + (kernel - 1)) // 2 for the
    # odd kernels and strides 1-2 used here.
    return nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)


class _DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = _depthwise(cin, kernel, stride)
        self.bn1 = nn.BatchNorm2d(cin)
        # timm's SE width is a quarter of the block's input channels, whatever the expansion.
        self.se = _SqueezeExcite(cin, round(cin * 0.25))
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(F.silu(self.bn1(self.conv_dw(x))))))
        return x + y if self.skip else y


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_dw = _depthwise(mid, kernel, stride)
        self.bn2 = nn.BatchNorm2d(mid)
        self.se = _SqueezeExcite(mid, round(cin * 0.25))
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.bn1(self.conv_pw(x)))
        y = self.se(F.silu(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.skip else y


class EfficientNetB4(nn.Module):
    """Feature map (B, 1792, H/32, W/32) of an ImageNet-normalised (B, 3, H, W) batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, _STEM, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(_STEM)
        stages = []
        cin = _STEM
        for kind, repeats, kernel, stride, expansion, cout in _STAGES:
            blocks: list[nn.Module] = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(_DepthwiseSeparable(cin, cout, kernel, s))
                else:
                    blocks.append(_InvertedResidual(cin, cout, kernel, s, expansion))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(cin, _FEATURES, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(_FEATURES)
        # timm's initialisation (after the TF reference): torch's default shrinks the
        # activations block after block, and a model built without a checkpoint (tests,
        # benchmarks) would give the same embedding for every photo.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, (2.0 / (fan_out // module.groups)) ** 0.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return F.silu(self.bn2(self.conv_head(x)))


class _ArcWeights(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, EMBEDDING_DIM))


class ArcFaceNet(nn.Module):
    """Unit-length 512-d embedding of an ImageNet-normalised (B, 3, 512, 512) batch."""

    def __init__(self, classes: int = ARC_CLASSES) -> None:
        super().__init__()
        self.model = EfficientNetB4()
        self.embedding = nn.Linear(_FEATURES, EMBEDDING_DIM)
        self.arc = _ArcWeights(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.model(x).mean((2, 3))
        return F.normalize(self.embedding(pooled), dim=1)

    def centroids(self) -> torch.Tensor:
        """The ArcFace class weights as unit rows: cosine logits are `embedding @ centroids.T`."""
        return F.normalize(self.arc.weight.detach(), dim=1)


def load_arcface_checkpoint(path: Path) -> ArcFaceNet:
    """The network of a Happywhale Lightning checkpoint (or a bare state dict), in eval mode.

    Raises:
        ModelFileError: the file is missing, is not a torch checkpoint, holds pickled code
            rather than tensors, or its keys or shapes are not this layout's.
    """
    state = read_state_dict(path)
    arc = state.get("arc.weight")
    if not isinstance(arc, torch.Tensor) or arc.ndim != 2 or arc.shape[1] != EMBEDDING_DIM:
        raise ModelFileError(path, f"expected 'arc.weight' of shape (classes, {EMBEDDING_DIM})")
    net = ArcFaceNet(classes=arc.shape[0])
    load_strict(net, state, path)
    return net.eval()
