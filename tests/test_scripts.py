"""The report scripts skip cleanly, writing nothing, where ../shared/data is absent (a
user's fresh clone): the photos are not distributed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize(
    "script",
    ["compute_metrics.py", "benchmark_noise.py", "benchmark_startup.py", "benchmark_codes.py"],
)
def test_without_the_data_folder_a_report_script_says_so_and_exits_0(
    script: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["--data", str(tmp_path / "absent")]
    if script == "compute_metrics.py":
        args += ["--out", str(out)]
    done = subprocess.run(
        [sys.executable, SCRIPTS / script, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "skipped: no data folder" in done.stdout
    assert not out.exists()


def test_the_readme_results_table_is_the_one_the_reports_give() -> None:
    done = subprocess.run(
        [sys.executable, SCRIPTS / "readme_results.py", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("script", ["benchmark_interface.py", "screenshots.py"])
def test_without_chromium_an_interface_script_says_so_and_exits_0(
    script: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            SCRIPTS / script,
            *(["--out", str(out)] if "screenshots" in script else []),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(tmp_path)},  # no chromium on it
    )
    assert done.returncode == 0, done.stderr
    assert "skipped: no Chromium found" in done.stdout
    assert not out.exists()
