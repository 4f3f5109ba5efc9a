"""Reading torch checkpoints safely and strictly, for the reference networks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from embeddings.model_files import ModelFileError

__all__ = ["load_strict", "read_state_dict"]


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The tensors of a checkpoint: a bare state dict or a Lightning `{'state_dict': ...}`.

    Raises:
        ModelFileError: missing file, not a torch checkpoint, or pickled objects other
            than tensors (refused rather than executed).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "not found")
    try:
        # weights_only: a checkpoint from the internet must not run code when loaded.
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ModelFileError(path, f"not a readable torch checkpoint ({exc})") from exc
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(path, "expected a state dict of tensors (or {'state_dict': ...})")
    return state


def load_strict(net: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load `state` into `net`, naming missing, unexpected and mis-shaped keys on failure."""
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [
            f"{label} {names[:3]}{' ...' if len(names) > 3 else ''} ({len(names)})"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", wrong),
            )
            if names
        ]
        raise ModelFileError(path, "not this model's layout: " + "; ".join(parts))
    net.load_state_dict(state, strict=True)
