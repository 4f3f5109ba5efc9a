"""EfficientNet-Lite0 as an ONNX graph, written from its state dict with `onnx.helper`.

Tan & Le, "EfficientNet", ICML 2019; the Lite variants (TensorFlow's efficientnet-lite,
2020) drop squeeze-excite, use ReLU6 and keep the stem (32) and head (1280) unscaled, so
the network quantises and runs well on CPUs. The state dict uses efficientnet_pytorch's
names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv/_depthwise_conv/_project_conv`,
`_bn0.._bn2`, `_conv_head`, `_bn1`, `_fc`).

The graph is built directly, so neither building nor serving needs torch:

- each convolution has its batch norm (eps 1e-3) folded into its weights and bias;
- padding is `auto_pad="SAME_UPPER"`, which is TensorFlow's "SAME" (the odd pixel of
  padding goes after), for any input size: height and width stay dynamic, like the batch,
  so a larger input gives a finer `feature_map`;
- ReLU6 is `Clip(0, 6)`, depthwise convolutions are `group = channels`.

Outputs: `logits` (B, 1000) ImageNet, `features` (B, 1280) pooled, `feature_map`
(B, 1280, H/32, W/32) before pooling.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["BN_EPS", "INPUT_NAME", "OUTPUT_NAMES", "build_lite0"]

BN_EPS = 1e-3
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "features", "feature_map")
# First blocks of the stride-2 stages; the stage strides are 1, 2, 2, 2, 1, 2, 1 over
# 1, 2, 2, 3, 3, 4, 1 blocks. Kernel sizes and widths are read from the weights.
_STRIDE_TWO_BLOCKS = frozenset({1, 3, 5, 11})
_OPSET = 17


class _Builder:
    """Accumulates nodes and initializers; every weight used is crossed off `unused`."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.unused = {k for k in weights if not k.endswith("num_batches_tracked")}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = [
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array(6.0, np.float32), "six"),
        ]

    def take(self, key: str) -> np.ndarray:
        if key not in self.weights:
            raise KeyError(f"missing weight {key}")
        self.unused.discard(key)
        return self.weights[key].astype(np.float32)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv_bn(
        self, x: str, conv: str, bn: str, *, stride: int = 1, relu6: bool, depthwise: bool = False
    ) -> str:
        """Conv (no bias) + BatchNorm folded into one Conv, then ReLU6 when asked."""
        weight = self.take(f"{conv}.weight")
        scale = self.take(f"{bn}.weight") / np.sqrt(self.take(f"{bn}.running_var") + BN_EPS)
        bias = self.take(f"{bn}.bias") - self.take(f"{bn}.running_mean") * scale
        y = conv.replace(".", "/")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [
                    x,
                    self.constant(f"{y}/w", weight * scale[:, None, None, None]),
                    self.constant(f"{y}/b", bias),
                ],
                [y],
                auto_pad="SAME_UPPER",
                strides=[stride, stride],
                group=weight.shape[0] if depthwise else 1,
            )
        )
        if not relu6:
            return y
        self.nodes.append(helper.make_node("Clip", [y, "zero", "six"], [f"{y}/relu6"]))
        return f"{y}/relu6"

    def block(self, x: str, index: int) -> str:
        """Inverted residual (MobileNetV2): expand 1x1, depthwise kxk, project 1x1 linear,
        with the identity added when the shape is kept."""
        prefix = f"_blocks.{index}"
        stride = 2 if index in _STRIDE_TWO_BLOCKS else 1
        expand = f"{prefix}._expand_conv"
        y = x
        if f"{expand}.weight" in self.weights:  # block 0 has no expansion
            in_channels = self.weights[f"{expand}.weight"].shape[1]
            y = self.conv_bn(y, expand, f"{prefix}._bn0", relu6=True)
        else:
            in_channels = self.take(f"{prefix}._depthwise_conv.weight").shape[0]
        y = self.conv_bn(
            y,
            f"{prefix}._depthwise_conv",
            f"{prefix}._bn1",
            stride=stride,
            relu6=True,
            depthwise=True,
        )
        y = self.conv_bn(y, f"{prefix}._project_conv", f"{prefix}._bn2", relu6=False)
        out_channels = self.weights[f"{prefix}._project_conv.weight"].shape[0]
        if stride == 1 and in_channels == out_channels:
            self.nodes.append(helper.make_node("Add", [x, y], [f"{prefix}/sum"]))
            return f"{prefix}/sum"
        return y


def build_lite0(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The network of an EfficientNet-Lite0 state dict, checked by ONNX's checker.

    Raises:
        KeyError: a weight the network needs is missing, or the state dict holds weights
            the network does not use (another architecture); the message names them.
    """
    builder = _Builder(weights)
    blocks = sorted({int(m.group(1)) for k in weights if (m := re.match(r"_blocks\.(\d+)\.", k))})
    if blocks != list(range(len(blocks))) or not blocks:
        raise KeyError(f"expected _blocks.0.. numbered without gaps, got {blocks[:20]}")
    x = builder.conv_bn(INPUT_NAME, "_conv_stem", "_bn0", stride=2, relu6=True)
    for index in blocks:
        x = builder.block(x, index)
    feature_map = builder.conv_bn(x, "_conv_head", "_bn1", relu6=True)
    nodes = builder.nodes
    nodes.append(helper.make_node("Identity", [feature_map], ["feature_map"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["feature_map"], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    fc_weight, fc_bias = builder.take("_fc.weight"), builder.take("_fc.bias")
    nodes.append(
        helper.make_node(
            "Gemm",
            ["features", builder.constant("fc/w", fc_weight), builder.constant("fc/b", fc_bias)],
            ["logits"],
            transB=1,
        )
    )
    if builder.unused:
        raise KeyError(f"weights the network does not use: {sorted(builder.unused)[:10]}")
    classes, width = fc_weight.shape
    graph = helper.make_graph(
        nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width]),
            helper.make_tensor_value_info(
                "feature_map", TensorProto.FLOAT, ["batch", width, "h_32", "w_32"]
            ),
        ],
        builder.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="whaleid"
    )
    model.ir_version = 8  # the oldest IR of opset 17, for older ONNX Runtimes
    onnx.checker.check_model(model)
    return model
