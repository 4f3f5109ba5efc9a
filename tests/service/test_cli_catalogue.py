"""Operator commands of the `whaleid` CLI: export and catalogue edits."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.service.test_cli import INDIVIDUALS, PHOTOS, gallery_dir, photos, run  # noqa: F401
from tests.synthetic import encode, sighting


@pytest.fixture
def data(gallery_dir: Path, tmp_path: Path) -> Path:  # noqa: F811
    copy = tmp_path / "data"
    shutil.copytree(gallery_dir, copy)
    return copy


def identify_best(capsys: pytest.CaptureFixture[str], data: Path, individual: str) -> str:
    query = data.parent / f"{individual}-query.png"
    query.write_bytes(encode(sighting(individual, seed=11)))
    code, out, _ = run(capsys, "identify", query, "--json", "--data", data)
    assert code == 0
    return json.loads(out.splitlines()[0])["candidates"][0]["individual_id"]


def test_export_csv_to_stdout_and_dwc_to_a_file(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "export", "--data", data)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(INDIVIDUALS) * PHOTOS
    out_file = tmp_path / "occ.csv"
    assert run(capsys, "export", "--format", "dwc", "--out", out_file, "--data", data)[0] == 0
    dwc = list(csv.DictReader(out_file.open(newline="")))
    assert {r["organismID"] for r in dwc} == set(INDIVIDUALS)
    # Without the service's address there is no URL to give: associatedMedia stays empty.
    assert {r["associatedMedia"] for r in dwc} == {""}
    base = "https://whaleid.example.org/"
    code, out, _ = run(capsys, "export", "--format", "dwc", "--base-url", base, "--data", data)
    assert code == 0
    ids = {r["image_id"] for r in rows}
    media = {r["associatedMedia"] for r in csv.DictReader(io.StringIO(out))}
    assert media == {f"https://whaleid.example.org/v1/images/{i}/file" for i in ids}


def test_export_of_an_empty_folder_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "export", "--data", tmp_path / "nothing")
    assert code == 1
    assert "no catalogue in" in err and "enrol photos first" in err
    assert not (tmp_path / "nothing").exists()


def test_list_and_show(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    code, out, _ = run(capsys, "individual", "list", "--data", data)
    assert code == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == sorted(INDIVIDUALS)
    code, out, _ = run(capsys, "individual", "show", INDIVIDUALS[0], "--data", data)
    assert code == 0
    assert out.count("  image ") == PHOTOS
    code, _, err = run(capsys, "individual", "show", "nobody", "--data", data)
    assert (code, "not found" in err) == (1, True)


def test_rename_merge_and_delete_are_searchable(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    first, second, third = INDIVIDUALS[:3]
    assert run(capsys, "individual", "rename", first, "HW-renamed", "--data", data)[0] == 0
    assert identify_best(capsys, data, first) == "HW-renamed"
    assert run(capsys, "individual", "merge", second, third, "--data", data)[0] == 0
    assert identify_best(capsys, data, second) == third
    assert run(capsys, "individual", "delete", third, "--data", data)[0] == 0
    assert identify_best(capsys, data, third) != third
    code, _, err = run(capsys, "individual", "merge", "nobody", INDIVIDUALS[4], "--data", data)
    assert code == 1
    assert "not found" in err


def test_image_delete(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    code, out, _ = run(capsys, "individual", "show", INDIVIDUALS[5], "--data", data)
    image_id = out.splitlines()[1].split()[1]
    assert run(capsys, "image", "delete", image_id, "--data", data)[0] == 0
    code, out, _ = run(capsys, "individual", "show", INDIVIDUALS[5], "--data", data)
    assert out.count("  image ") == PHOTOS - 1
    assert run(capsys, "image", "delete", image_id, "--data", data)[0] == 1
