"""Reading torch state dicts without torch: both file layouts, strided tensors, and
refusing pickles that ask for anything but tensors."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from embeddings.model_files import ModelFileError
from embeddings.state_dict import read_state_dict


def _state() -> OrderedDict[str, torch.Tensor]:
    torch.manual_seed(0)
    shared = torch.randn(10)
    return OrderedDict(
        [
            ("conv.weight", torch.randn(4, 3, 3, 3)),
            ("permuted", torch.randn(3, 3, 3, 4).permute(3, 0, 1, 2)),  # non-contiguous
            ("offset", shared[2:7]),  # a view at storage offset 2
            ("strided", shared[::3]),
            ("count", torch.tensor(7)),  # 0-d int64, like num_batches_tracked
            ("half", torch.randn(5).half()),
            ("empty", torch.zeros(0, 3)),
        ]
    )


@pytest.mark.parametrize("zip_layout", [True, False], ids=["zip", "legacy"])
def test_a_torch_state_dict_reads_as_equal_numpy_arrays(tmp_path: Path, zip_layout: bool) -> None:
    state = _state()
    path = tmp_path / "weights.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_layout)

    read = read_state_dict(path)

    assert list(read) == list(state)
    for name, tensor in state.items():
        assert read[name].shape == tuple(tensor.shape), name
        assert read[name].dtype == tensor.numpy().dtype, name
        assert np.array_equal(read[name], tensor.numpy()), name
        assert read[name].flags.c_contiguous, name


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("zip_layout", [True, False], ids=["zip", "legacy"])
def test_a_pickle_that_calls_anything_else_is_refused_without_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip_layout: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    if zip_layout:
        torch.save({"w": torch.zeros(2)}, path)
        with zipfile.ZipFile(path) as archive:
            entries = {n: archive.read(n) for n in archive.namelist()}
        name = next(n for n in entries if n.endswith("/data.pkl"))
        entries[name] = pickle.dumps({"w": _RunsCode()}, protocol=2)
        with zipfile.ZipFile(path, "w") as archive:
            for n, data in entries.items():
                archive.writestr(n, data)
    else:
        magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        path.write_bytes(magic + pickle.dumps(_RunsCode(), protocol=2))

    with pytest.raises(ModelFileError, match=r"refusing (posix|os|nt)\.system"):
        read_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_a_pickled_module_is_refused_naming_its_class(tmp_path: Path) -> None:
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)

    with pytest.raises(ModelFileError, match=r"refusing torch\.nn\.modules\.linear\.Linear"):
        read_state_dict(path)


def test_a_truncated_storage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.pth"
    torch.save({"w": torch.zeros(8)}, path)
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    storage = next(n for n in entries if "/data/" in n and n.rsplit("/", 1)[1].isdigit())
    entries[storage] = entries[storage][:12]
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in entries.items():
            archive.writestr(n, data)

    with pytest.raises(ModelFileError, match="truncated"):
        read_state_dict(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a checkpoint",
        pickle.dumps([1, 2]),
        b"\x80\x02ctorch\nFloatStorage\n)R.",  # calls an admitted storage type
    ],
    ids=["empty", "text", "a-list", "storage-called"],
)
def test_what_is_not_a_state_dict_is_a_model_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.pth"
    path.write_bytes(content)

    with pytest.raises(ModelFileError, match="not a plain torch state dict"):
        read_state_dict(path)
