"""Reading a torch `.pth` state dict without torch, and without trusting its pickle.

A `.pth` is pickled Python: `torch.load` on an untrusted file can run any code. Serving
must not import torch anyway, so the weights are read here with a restricted unpickler
that admits only what a state dict is made of (an `OrderedDict` of tensors, each rebuilt
by `torch._utils._rebuild_tensor_v2` from a typed storage) and refuses every other
global by name. Tensors come back as numpy arrays, honouring each tensor's storage
offset, shape and strides (a tensor may be a strided view of its storage).

Both of torch's file layouts are read: the zip archive written since torch 1.6
(`<name>/data.pkl` + `<name>/data/<key>`) and the legacy stream (magic number, protocol,
system info, the pickle, the storage keys, then each storage as an int64 element count
followed by its raw little-endian bytes), which older checkpoints such as
`efficientnet-lite0-57934424.pth` use.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from embeddings.model_files import ModelFileError

__all__ = ["read_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, dtype: type[np.generic]) -> None:
        self.dtype = np.dtype(dtype)


class _StorageRef:
    def __init__(self, key: str, dtype: np.dtype, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
    """A tensor whose storage bytes may come after the pickle (legacy layout)."""

    def __init__(
        self, storage: _StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor_v2(
    storage: object, offset: object, size: object, stride: object, *_: object
) -> _TensorRef:
    if not (
        isinstance(storage, _StorageRef)
        and isinstance(offset, int)
        and isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(isinstance(n, int) and n >= 0 for n in size + stride)
    ):
        raise pickle.UnpicklingError("malformed tensor record")
    return _TensorRef(storage, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Admits `OrderedDict`, `_rebuild_tensor_v2` and the typed storages; nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing {module}.{name}: not part of a state dict")

    def persistent_load(self, pid: object) -> _StorageRef:
        # ("storage", storage type, key, location, element count[, view metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (legacy torch < 0.4) are not supported")
        if not (isinstance(kind, _StorageType) and isinstance(key, str) and isinstance(numel, int)):
            raise pickle.UnpicklingError(f"malformed storage record {pid!r:.80}")
        return _StorageRef(key, kind.dtype, numel)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a torch state dict file, by name, as numpy arrays.

    Raises:
        ModelFileError: not a readable state dict, or a pickle that asks for anything a
            state dict does not need (the name of what it asked for is in the message).
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _read_zip(archive)
        with open(path, "rb") as f:
            return _read_legacy(f)
    # A crafted pickle can still misuse the admitted types (call a storage type, BUILD
    # odd attributes onto a record): whatever fails to read is "not a state dict".
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as exc:
        raise ModelFileError(path, f"not a plain torch state dict ({exc})") from exc


def _read_zip(archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError("no data.pkl in the archive")
    root = pickles[0].rsplit("/", 1)[0]
    refs = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
    return _resolve(refs, lambda ref: archive.read(f"{root}/data/{ref.key}"))


def _read_legacy(f: BinaryIO) -> dict[str, np.ndarray]:
    if _StateDictUnpickler(f).load() != _LEGACY_MAGIC:
        raise ValueError("neither a zip archive nor a legacy torch file")
    _StateDictUnpickler(f).load()  # protocol version
    info = _StateDictUnpickler(f).load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise ValueError("only little-endian files are supported")
    refs = _StateDictUnpickler(f).load()
    keys = _StateDictUnpickler(f).load()
    storages = {t.storage.key: t.storage for t in _tensor_refs(refs).values()}
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise ValueError("the storage list does not match the tensors")
    raw: dict[str, bytes] = {}
    for key in keys:
        numel = int(np.frombuffer(f.read(8), dtype="<i8")[0])
        raw[key] = f.read(numel * storages[key].dtype.itemsize)
    return _resolve(refs, lambda ref: raw[ref.key])


def _tensor_refs(refs: object) -> dict[str, _TensorRef]:
    if not isinstance(refs, dict) or not all(
        isinstance(k, str) and isinstance(v, _TensorRef) for k, v in refs.items()
    ):
        raise ValueError("the pickle is not a flat dict of named tensors")
    return refs


def _resolve(refs: object, storage_bytes: Callable[[_StorageRef], bytes]) -> dict[str, np.ndarray]:
    cache: dict[str, np.ndarray] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, ref in _tensor_refs(refs).items():
        storage = ref.storage
        if storage.key not in cache:
            data = np.frombuffer(storage_bytes(storage), dtype=storage.dtype.newbyteorder("<"))
            if data.size < storage.numel:
                raise ValueError(f"storage {storage.key} is truncated")
            cache[storage.key] = data[: storage.numel]
        tensors[name] = _view(cache[storage.key], ref, name)
    return tensors


def _view(data: np.ndarray, ref: _TensorRef, name: str) -> np.ndarray:
    """The tensor's own copy of its strided view of `data`, bounds-checked first."""
    if any(n == 0 for n in ref.size):
        return np.zeros(ref.size, dtype=data.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or last >= data.size:
        raise ValueError(f"tensor {name} reaches outside its storage")
    strides = tuple(s * data.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(data[ref.offset :], ref.size, strides, writeable=False)
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C")
