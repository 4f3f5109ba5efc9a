"""Reading the ArcFace centroids of a Happywhale checkpoint for import into the gallery.

Three files, as published with the checkpoint: the checkpoint itself (its `arc.weight`
rows are the class centroids), `encoder_classes.npy` (the individual id of each active
row, a scikit-learn LabelEncoder's `classes_`) and a species map CSV
(`individual_id,species`).
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np

from embeddings.model_files import ModelFileError

__all__ = ["CentroidRow", "read_centroids"]

CentroidRow = tuple[str, str | None, np.ndarray]
"""(individual id, species or None, unit (D,) float32 centroid)."""

# What numpy's pickle of an array of Python strings refers to, and nothing else.
_ARRAY_PICKLE = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def read_centroids(checkpoint: Path, classes: Path, species_map: Path) -> list[CentroidRow]:
    """One row per class id, in class order.

    Raises:
        ModelFileError: a file is missing or unreadable, the class list is longer than
            the checkpoint's `arc.weight`, or a class id repeats.
    """
    # torch only for this offline import: the checkpoint is a torch pickle.
    from embeddings.reference.checkpoints import read_state_dict

    arc = read_state_dict(checkpoint).get("arc.weight")
    if arc is None or arc.ndim != 2:
        raise ModelFileError(checkpoint, "has no 2-D 'arc.weight' (the ArcFace centroids)")
    weights = arc.detach().float().numpy()
    ids = [str(c) for c in _read_classes(classes)]
    if len(ids) > len(weights):
        raise ModelFileError(
            classes, f"{len(ids)} classes, but the checkpoint has {len(weights)} centroids"
        )
    if len(set(ids)) != len(ids):
        raise ModelFileError(classes, "a class id appears more than once")
    species = _read_species(species_map)
    active = weights[: len(ids)]
    norms = np.linalg.norm(active, axis=1, keepdims=True)
    if not np.isfinite(active).all() or (norms == 0).any():
        raise ModelFileError(checkpoint, "'arc.weight' has zero or non-finite rows")
    unit = (active / norms).astype(np.float32)
    return [(ident, species.get(ident), unit[i]) for i, ident in enumerate(ids)]


def _read_classes(path: Path) -> np.ndarray:
    """A 1-D array of class ids from a .npy file. Arrays of Python strings are pickled
    inside the .npy; they are unpickled with only numpy's array classes allowed, so a
    doctored file cannot run code."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject:
                array = _ArrayUnpickler(f).load()
            else:
                f.seek(0)
                array = np.load(f, allow_pickle=False)
    except FileNotFoundError as exc:
        raise ModelFileError(path, "not found") from exc
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelFileError(path, f"not a readable .npy array of class ids ({exc})") from exc
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.shape != shape:
        raise ModelFileError(path, "expected a 1-D array of class ids")
    return array


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ARRAY_PICKLE:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_species(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"individual_id", "species"} <= set(reader.fieldnames):
                raise ModelFileError(path, "expected the columns individual_id,species")
            return {
                row["individual_id"].strip(): row["species"].strip()
                for row in reader
                if row["individual_id"] and row["species"]
            }
    except FileNotFoundError as exc:
        raise ModelFileError(path, "not found") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ModelFileError(path, f"not a readable CSV ({exc})") from exc
