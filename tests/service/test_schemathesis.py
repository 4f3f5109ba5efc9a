"""Schemathesis, every check on, against a live `whaleid serve`: no server error, no
answer, status, header or media type the OpenAPI document does not describe. Bounded
(a fixed seed and a few examples per operation) so that CI runs it in about a minute;
`scripts/` can run it longer with `--max-examples`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.test_client import Server

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    assert schemathesis.exists() or shutil.which("schemathesis"), "pip install -e '.[test]'"
    server = Server(tmp_path / "data", tmp_path / "server.log")
    try:
        done = subprocess.run(
            [
                str(schemathesis),
                "run",
                f"{server.url}/schema/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "20261202",
            ],
            cwd=ROOT,  # for schemathesis.toml
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failures" not in done.stdout.splitlines()[-1]
