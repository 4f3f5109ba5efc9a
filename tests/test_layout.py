"""Serving never imports torch: the reference networks and the ONNX export live apart, in
`embeddings.reference`, and need the `[models]` extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_REPORT = """
import sys
print(" ".join(sorted(
    m for m in sys.modules if m == "torch" or m.startswith(("torch.", "embeddings.reference."))
)))
"""

_EVERY_SERVING_MODULE = """
import importlib, pkgutil
for package in ("service", "cluster", "indexer", "embeddings"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not info.name.startswith("embeddings.reference"):
            importlib.import_module(info.name)
"""


def _torch_modules_after(code: str) -> list[str]:
    # A fresh interpreter: the test session's own torch (the deep-model fixtures) must
    # not hide an import.
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("module", ["service.app", "service.cli", "indexer"])
def test_importing_serving_code_does_not_import_torch(module: str) -> None:
    assert _torch_modules_after(f"import {module}\n") == []


def test_no_serving_module_imports_torch_or_the_reference_package() -> None:
    assert _torch_modules_after(_EVERY_SERVING_MODULE) == []


def test_ray_is_imported_only_by_a_command_that_uses_it() -> None:
    """Ray is an optional extra, and slow to import: `--help` and the service never load it."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _EVERY_SERVING_MODULE
            + "import sys; print(sorted(m for m in sys.modules if m == 'ray'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
