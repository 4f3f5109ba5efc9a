"""One pipeline, one answer: `whaleid identify --json` prints exactly what
`POST /v1/identify` answers for the same photo and gallery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.cli import main
from service.config import Settings
from tests.synthetic import encode, sighting, write_folder

INDIVIDUALS = ["HW-1", "HW-2", "HW-3", "HW-4"]


def _cli_answers(capsys: pytest.CaptureFixture[str], data: Path, paths: list[Path]) -> list[dict]:
    code = main(["identify", "--json", "--data", str(data), *map(str, paths)])
    out, _ = capsys.readouterr()
    assert code == 1  # one file is not a photo: answered, and the exit code says so
    return [json.loads(line) for line in out.splitlines()]


def _comparable(answer: dict) -> dict:
    """Everything but the timings (and the name, which HTTP reduces to the file name)."""
    return {k: v for k, v in answer.items() if k not in ("timings_ms", "image")}


@pytest.mark.slow
def test_cli_json_is_the_http_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHALEID_DATA", raising=False)
    monkeypatch.delenv("WHALEID_CONFIG", raising=False)
    data = tmp_path / "data"
    write_folder(tmp_path / "catalogue", INDIVIDUALS, photos=3)
    assert main(["enrol", str(tmp_path / "catalogue"), "--data", str(data)]) == 0
    queries = tmp_path / "queries"
    queries.mkdir()
    paths = []
    for name, content in [
        ("known.jpg", encode(sighting("HW-2", 9), "JPEG")),
        ("stranger.jpg", encode(sighting("nobody", 9), "JPEG")),
        ("blank.png", encode(sighting("HW-1", 0)[:40, :40] * 0 + 128, "PNG")),
        ("broken.jpg", b"\xff\xd8 not a photo"),
    ]:
        (queries / name).write_bytes(content)
        paths.append(queries / name)
    capsys.readouterr()

    cli = _cli_answers(capsys, data, paths)
    with TestClient(create_app(Settings(data_dir=str(data)))) as client:
        http = [
            client.post("/v1/identify", files={"file": (p.name, p.read_bytes())}).json()
            for p in paths
        ]

    assert [a["decision"] for a in http] == ["match", "new_individual", "rejected", "rejected"]
    assert http[0]["candidates"][0]["individual_id"] == "HW-2"
    assert [a["rejection_reason"] for a in http[2:]] == ["low_confidence", "unsupported_format"]
    assert [_comparable(a) for a in cli] == [_comparable(a) for a in http]
    assert [Path(a["image"]).name for a in cli] == [a["image"] for a in http]
