"""ONNX Runtime sessions for the exported networks: the serving path of the deep models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from embeddings.model_files import ModelFileError

__all__ = ["OnnxNet"]


class OnnxNet:
    """One exported network with one input, run on the CPU.

    Args:
        path: the `.onnx` file (already checked against its model card).
        threads: intra-op threads; 0 lets ONNX Runtime use every core.
    """

    def __init__(self, path: Path, threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own untyped errors for bad graphs
            raise ModelFileError(path, f"ONNX Runtime cannot load it ({exc})") from exc
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run a (B, ...) float32 batch; returns the (first) output as float32."""
        return self.outputs(batch)[0]

    def outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run a (B, ...) float32 batch; returns every output, as float32, in the
        graph's order."""
        return [
            out.astype(np.float32, copy=False)
            for out in self._session.run(None, {self._input: batch})
        ]
