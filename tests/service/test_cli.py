"""The `whaleid` command line, driven through `main(argv)` on synthetic photos."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import msgspec
import pytest

import indexer.gallery
import service.cli._catalogue
from embeddings.images import load_photo_file
from embeddings.keypoints import KeypointConfig
from indexer.config import EngineConfig
from indexer.local_search import SearchParameters
from indexer.results import BuildStage
from service.cli import main
from service.photo_sources import ManifestEntry
from tests.synthetic import encode, fluke, sighting, write_folder, write_manifest

INDIVIDUALS = [f"HW-{i}" for i in range(6)]
PHOTOS = 3  # per individual: enough labelled pairs for the gallery to fit a calibration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's WHALEID_* variables and working directory out of the tests."""
    for name in (
        "WHALEID_CONFIG",
        "WHALEID_DATA",
        "WHALEID_HOST",
        "WHALEID_PORT",
        "WHALEID_WORKERS",
        "WHALEID_MAX_UPLOAD_BYTES",
        "WHALEID_MODELS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder-per-individual tree of synthetic photos."""
    root = tmp_path_factory.mktemp("photos")
    write_folder(root, INDIVIDUALS, photos=PHOTOS)
    return root


@pytest.fixture(scope="module")
def gallery_dir(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with every photo of `photos` enrolled and the index rebuilt (which
    fits the calibration). Tests that use it must not change it."""
    data = tmp_path_factory.mktemp("data")
    assert main(["enrol", str(photos), "--data", str(data)]) == 0
    assert main(["index", "rebuild", "--data", str(data)]) == 0
    return data


@pytest.fixture
def queries(tmp_path: Path) -> dict[str, Path]:
    """Unseen photos: a new view of a known individual, an unknown animal, junk."""
    files = {
        "known": ("known.png", encode(sighting(INDIVIDUALS[2], seed=11))),
        "unknown": ("unknown.png", encode(sighting("never-enrolled", seed=3))),
        "corrupted": ("corrupted.jpg", encode(fluke(0), "JPEG")[:400]),
        "text": ("notes.png", b"field notes, not a photo\n"),
    }
    paths = {}
    for key, (name, content) in files.items():
        paths[key] = tmp_path / "queries" / name
        paths[key].parent.mkdir(exist_ok=True)
        paths[key].write_bytes(content)
    return paths


# ---------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["index"], id="index-without-subcommand"),
        pytest.param(["identify"], id="identify-without-images"),
        pytest.param(["identify", "--from", "d", "--ray", "h:1"], id="identify-ray-without-out"),
        pytest.param(["identify", "a.jpg", "--top-k", "0"], id="top-k-zero"),
        pytest.param(["identify", "a.jpg", "--top-k", "51"], id="top-k-too-big"),
        pytest.param(["evaluate", "m.csv"], id="evaluate-without-json"),
        pytest.param(["serve", "--port", "http"], id="bad-port"),
    ],
)
def test_usage_errors_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert "usage:" in err
    assert "Traceback" not in out + err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")

    assert code == 0
    for command in ("enrol", "identify", "index", "evaluate", "serve", "stats"):
        assert command in out


def test_config_typo_exits_2_naming_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "whaleid.toml"
    config.write_text("[engine]\ntopk = 3\n", encoding="utf-8")

    code, _, err = run(capsys, "stats", "--config", config, "--data", tmp_path / "data")

    assert code == 2
    assert "topk" in err and str(config) in err
    assert "Traceback" not in err


def test_bad_environment_variable_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHALEID_WORKERS", "many")

    code, _, err = run(capsys, "stats")

    assert code == 2
    assert "WHALEID_WORKERS" in err


@pytest.mark.parametrize(
    ("source", "words"),
    [
        pytest.param("missing-folder", "no such file", id="missing"),
        pytest.param("missing.csv", "cannot read", id="missing-csv"),
        pytest.param("bad.csv", "missing column(s) species", id="bad-header"),
        pytest.param("empty", "one sub-folder per individual", id="empty-folder"),
    ],
)
def test_bad_source_exits_1_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str, words: str
) -> None:
    (tmp_path / "bad.csv").write_text("path,individual_id\na.jpg,X\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    data = tmp_path / "data"

    code, _, err = run(capsys, "enrol", tmp_path / source, "--data", data)

    assert code == 1
    assert words in err
    assert "Traceback" not in err
    assert not data.exists()  # a typo in the source must not create a database


def test_data_folder_that_is_a_file_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "data").write_text("not a folder", encoding="utf-8")

    write_folder(tmp_path / "photos", ["A"], photos=1)
    code, _, err = run(capsys, "enrol", tmp_path / "photos", "--data", tmp_path / "data" / "sub")

    assert code == 1
    assert "cannot open the data folder" in err


@pytest.mark.parametrize(
    "command", [["stats"], ["identify", "x.jpg"], ["individual", "rename", "a", "b"]]
)
def test_a_folder_without_a_catalogue_is_refused_not_searched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    code, out, err = run(capsys, *command, "--data", tmp_path / "typo")

    assert code == 1 and out == ""
    assert err.startswith(f"whaleid: no catalogue in {tmp_path / 'typo'}: enrol photos first")
    assert not (tmp_path / "typo").exists()  # nothing was created
    assert "Traceback" not in err


# ---------------------------------------------------------------------- enrol


def test_enrol_folder_then_again_counts_duplicates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_folder(tmp_path / "photos", ["A", "B"], photos=2)
    data = tmp_path / "data"

    first = run(capsys, "enrol", tmp_path / "photos", "--data", data)
    second = run(capsys, "enrol", tmp_path / "photos", "--data", data)

    assert first[0] == 0
    assert "enrolled 4, duplicates 0, failed 0, skipped 0" in first[1]
    assert second[0] == 0
    assert "enrolled 0, duplicates 4, failed 0, skipped 0" in second[1]


def test_enrol_reports_bad_photos_and_skips_unlabelled_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    images = tmp_path / "set" / "images"
    images.mkdir(parents=True)
    (images / "good.jpg").write_bytes(encode(sighting("A", 0), "JPEG"))
    (images / "truncated.jpg").write_bytes(encode(sighting("A", 1), "JPEG")[:300])
    (images / "unlabelled.jpg").write_bytes(encode(sighting("B", 0), "JPEG"))
    (images / "slash.jpg").write_bytes(encode(sighting("C", 0), "JPEG"))
    manifest = write_manifest(
        tmp_path / "set" / "manifest.csv",
        [
            ("images/good.jpg", "A", "humpback_whale"),
            ("images/truncated.jpg", "A", "humpback_whale"),
            ("images/missing.jpg", "A", "humpback_whale"),
            ("images/unlabelled.jpg", "", "bottlenose"),
            ("images/slash.jpg", "C/1", "bottlenose"),
        ],
    )

    code, out, err = run(capsys, "enrol", manifest, "--data", tmp_path / "data")

    assert code == 0
    assert "enrolled 1, duplicates 0, failed 3, skipped 1" in out
    assert "must not contain '/'" in err
    assert f"{images / 'truncated.jpg'}: corrupted_image" in err
    assert f"{images / 'missing.jpg'}: corrupted_image" in err
    assert "Traceback" not in err


def test_enrol_where_every_photo_fails_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "photos" / "A"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(b"not a photo")

    code, out, err = run(capsys, "enrol", tmp_path / "photos", "--data", tmp_path / "data")

    assert code == 1
    assert "enrolled 0, duplicates 0, failed 1, skipped 0" in out
    assert "no photo" in err


def test_interrupted_enrol_keeps_what_was_acknowledged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "photos", ["A", "B"], photos=2)
    data = tmp_path / "data"
    calls = []

    def load_then_interrupt(path: Path, **kwargs: int):  # type: ignore[no-untyped-def]
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return load_photo_file(path, **kwargs)

    monkeypatch.setattr(service.cli._catalogue, "load_photo_file", load_then_interrupt)

    code, out, _ = run(capsys, "enrol", tmp_path / "photos", "--data", data)
    monkeypatch.undo()
    _, stats, _ = run(capsys, "stats", "--data", data)

    assert code == 130
    assert "enrolled 2" in out and "interrupted" in out
    assert "photos       2" in stats and "searchable   2" in stats


def test_data_folder_defaults_to_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "photos", ["A"], photos=1)
    monkeypatch.setenv("WHALEID_DATA", str(tmp_path / "from-env"))

    code, out, _ = run(capsys, "enrol", tmp_path / "photos")

    assert code == 0
    assert str(tmp_path / "from-env") in out
    assert (tmp_path / "from-env").is_dir()


# ---------------------------------------------------------------------- identify


def test_identify_prints_a_table_and_continues_past_bad_images(
    capsys: pytest.CaptureFixture[str], gallery_dir: Path, queries: dict[str, Path]
) -> None:
    code, out, err = run(
        capsys,
        "identify",
        queries["corrupted"],
        queries["known"],
        queries["text"],
        "--data",
        gallery_dir,
    )

    assert code == 1  # some images failed
    lines = out.splitlines()
    assert any(
        line.startswith(f"{queries['corrupted']}: rejected (corrupted_image)") for line in lines
    )
    assert any(
        line.startswith(f"{queries['text']}: rejected (unsupported_format)") for line in lines
    )
    known = lines.index(next(line for line in lines if line.startswith(str(queries["known"]))))
    assert lines[known].startswith(f"{queries['known']}: match (rootsift")
    assert lines[known + 1].split() == [
        "#",
        "individual",
        "species",
        "probability",
        "score",
        "evidence",
    ]
    assert lines[known + 2].split()[:2] == ["1", INDIVIDUALS[2]]
    assert "Traceback" not in err


def test_identify_json_lines(
    capsys: pytest.CaptureFixture[str], gallery_dir: Path, queries: dict[str, Path]
) -> None:
    code, out, _ = run(
        capsys,
        "identify",
        queries["known"],
        queries["unknown"],
        queries["corrupted"],
        "--json",
        "--top-k",
        "2",
        "--data",
        gallery_dir,
    )

    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [a["image"] for a in answers] == [
        str(queries["known"]),
        str(queries["unknown"]),
        str(queries["corrupted"]),
    ]
    known, unknown, corrupted = answers
    assert known["decision"] == "match"
    assert known["candidates"][0]["individual_id"] == INDIVIDUALS[2]
    assert len(known["candidates"]) <= 2
    assert known["calibrated"] is True
    assert set(known["candidates"][0]) == {
        "individual_id",
        "species",
        "probability",
        "score",
        "evidence",
        "similarity",
    }
    assert known["candidates"][0]["similarity"] is None  # no deep model
    assert known["models"] == []
    assert unknown["decision"] == "new_individual"
    assert corrupted["decision"] == "rejected"
    assert corrupted["rejection_reason"] == "corrupted_image"


def test_identify_all_good_exits_0(
    capsys: pytest.CaptureFixture[str], gallery_dir: Path, queries: dict[str, Path]
) -> None:
    code, _, _ = run(capsys, "identify", queries["known"], "--data", gallery_dir)

    assert code == 0


# ---------------------------------------------------------------------- index, stats


def test_stats_counts_the_gallery(capsys: pytest.CaptureFixture[str], gallery_dir: Path) -> None:
    code, out, _ = run(capsys, "stats", "--data", gallery_dir)

    fields = dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())
    assert code == 0
    assert fields["individuals"] == str(len(INDIVIDUALS))
    assert fields["photos"] == str(len(INDIVIDUALS) * PHOTOS)
    assert fields["searchable"] == str(len(INDIVIDUALS) * PHOTOS)
    assert int(fields["descriptors"]) > 0


def test_rebuild_shows_progress_of_each_stage_of_the_build_then_of_the_calibration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "photos", ["A", "B"], photos=2)
    data = tmp_path / "data"
    assert run(capsys, "enrol", tmp_path / "photos", "--data", data)[0] == 0
    # Four photos' descriptors past the exact index's size: the IVF lists are trained.
    small = SearchParameters(exact_search_max=200, nprobe=32)
    monkeypatch.setattr(indexer.gallery, "SearchParameters", lambda: small)

    code, out, err = run(capsys, "index", "rebuild", "--data", data)

    assert code == 0
    assert "index rebuilt" in out
    # tqdm bars on stderr, one per stage of the build, then the calibration's (its
    # queries are not images built); the training has no progress of its own and says so.
    reading = re.search(rf"{BuildStage.READING}: 100%.*4/4 \[.*image", err)
    training = err.index(f"{BuildStage.TRAINING}\n")
    adding = re.search(rf"{BuildStage.ADDING}: 100%.*4/4 \[.*image", err)
    calibrating = re.search(r"calibrate: 100%.*4/4 \[.*query", err)
    assert reading and adding and calibrating
    assert reading.start() < training < adding.start() < calibrating.start()


def test_rebuild_builds_once_without_first_bringing_the_saved_index_up_to_date(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.local_search import LocalSearch

    write_folder(tmp_path / "photos", ["A", "B"], photos=1)
    write_folder(tmp_path / "later", ["C", "D"], photos=1)
    data = tmp_path / "data"
    assert run(capsys, "enrol", tmp_path / "photos", "--data", data)[0] == 0
    behind = (data / "index").rename(tmp_path / "behind")
    assert run(capsys, "enrol", tmp_path / "later", "--data", data)[0] == 0
    # The saved index now lacks the later photos, as after a crash before it was saved.
    shutil.rmtree(data / "index")
    behind.rename(data / "index")
    calls: list[str] = []
    for name in ("build", "add"):
        method = getattr(LocalSearch, name)
        monkeypatch.setattr(
            LocalSearch,
            name,
            lambda self, *a, _m=method, _n=name, **k: calls.append(_n) or _m(self, *a, **k),
        )

    code, out, _ = run(capsys, "index", "rebuild", "--data", data)

    assert code == 0 and calls == ["build"]
    monkeypatch.undo()
    code, out, _ = run(capsys, "stats", "--data", data)
    assert "searchable   4" in out


def test_rebuild_after_a_settings_change_re_extracts_from_the_stored_photos(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from embeddings.images import load_photo
    from indexer.gallery import Gallery

    write_folder(tmp_path / "photos", ["A", "B"], photos=2)
    data = tmp_path / "data"
    assert run(capsys, "enrol", tmp_path / "photos", "--data", data)[0] == 0
    # A photo enrolled by a version that kept no files.
    with Gallery.open(data) as gallery:
        old = load_photo(encode(sighting("C", 0), "JPEG"))
        old_id = gallery.catalogue.enrol(
            msgspec.structs.replace(old, content=b""), "C", source_name="c.jpg"
        )
    config = tmp_path / "whaleid.toml"
    config.write_text("[features]\nmax_features = 600\n")

    code, out, _ = run(capsys, "stats", "--data", data, "--config", config)
    assert "searchable   0" in out and "whaleid index rebuild" in out
    code, out, err = run(capsys, "index", "rebuild", "--data", data, "--config", config)

    assert code == 0
    assert "features extracted from 4 stored photos" in out
    assert "re-extract" in err and "5/5" in err  # the tqdm bar
    assert "1 photos have no stored file" in err and f"{old_id.image_id} (c.jpg)" in err
    code, out, _ = run(capsys, "stats", "--data", data, "--config", config)
    assert "searchable   4" in out
    query = tmp_path / "query.png"
    query.write_bytes(encode(sighting("B", seed=11)))
    code, out, _ = run(capsys, "identify", query, "--json", "--data", data, "--config", config)
    assert json.loads(out)["candidates"][0]["individual_id"] == "B"


# ---------------------------------------------------------------------- evaluate


class FakeReport(msgspec.Struct, kw_only=True):
    top1: float
    top5: float
    map5: float
    n_queries: int
    query_ms_p50: float
    stages: list[str] = msgspec.field(default_factory=lambda: ["decode", "local search"])


def test_evaluate_writes_the_report_and_a_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's plumbing, with a stand-in for the evaluation harness."""
    write_folder(tmp_path / "photos", ["A", "B"], photos=2)
    config = tmp_path / "whaleid.toml"
    config.write_text("[features]\nlong_side = 400\n[engine]\ntop_k = 7\n", encoding="utf-8")
    seen: dict[str, object] = {}

    def evaluate(  # type: ignore[no-untyped-def]
        entries, *, features, engine, open_set, seed, embedder, gate, locator, distractors, progress
    ):
        seen.update(
            locator=locator,
            distractors=distractors,
            entries=entries,
            features=features,
            engine=engine,
            open_set=open_set,
            seed=seed,
            embedder=embedder,
            gate=gate,
        )
        progress(1, 2)
        progress(2, 2)
        return FakeReport(top1=0.75, top5=1.0, map5=0.875, n_queries=4, query_ms_p50=12.5)

    monkeypatch.setitem(
        sys.modules, "evaluation.leave_one_out", types.SimpleNamespace(evaluate=evaluate)
    )
    out_json = tmp_path / "reports" / "accuracy.json"

    code, out, _ = run(
        capsys,
        "evaluate",
        tmp_path / "photos",
        "--open-set",
        "--seed",
        "7",
        "--json",
        out_json,
        "--config",
        config,
        "--distractors",
        write_manifest(tmp_path / "photos" / "others.csv", [("B/B_0.jpg", "", "dolphin")]),
        "--no-locator",
    )

    assert code == 0
    assert json.loads(out_json.read_text()) == {
        "top1": 0.75,
        "top5": 1.0,
        "map5": 0.875,
        "n_queries": 4,
        "query_ms_p50": 12.5,
        "stages": ["decode", "local search"],
    }
    assert (
        "top1 0.750  top5 1.000  map5 0.875  queries 4  query p50 12.5 ms  (decode, local search)"
        in out
    )
    assert seen["open_set"] is True and seen["seed"] == 7
    assert seen["embedder"] is None and seen["gate"] is None  # no models installed
    assert seen["locator"] is None
    assert [e.path.name for e in seen["distractors"]] == ["B_0.jpg"]
    assert seen["features"] == KeypointConfig(long_side=400)
    assert seen["engine"] == EngineConfig(top_k=7)
    entries = seen["entries"]
    assert isinstance(entries, list) and len(entries) == 4
    assert all(isinstance(e, ManifestEntry) for e in entries)


@pytest.mark.slow
def test_evaluate_runs_the_real_harness(
    capsys: pytest.CaptureFixture[str], photos: Path, tmp_path: Path
) -> None:
    out_json = tmp_path / "report.json"

    code, out, _ = run(capsys, "evaluate", photos, "--json", out_json)

    report = json.loads(out_json.read_text())
    assert code == 0
    assert report["n_queries"] == len(INDIVIDUALS) * PHOTOS
    assert report["top1"] >= 0.9
    assert out.startswith("top1 ")


# ---------------------------------------------------------------------- serve


def test_serve_runs_the_app_with_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from litestar import Litestar

    calls: list[tuple[object, str, int]] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda app, host, port, **_: calls.append((app, host, port))
    )
    monkeypatch.setenv("WHALEID_PORT", "9100")

    default = main(["serve", "--data", str(tmp_path / "data")])
    overridden = main(["serve", "--host", "0.0.0.0", "--port", "9200"])

    assert default == overridden == 0
    (app, host, port), (_, host2, port2) = calls
    assert isinstance(app, Litestar)
    assert (host, port) == ("127.0.0.1", 9100)
    assert (host2, port2) == ("0.0.0.0", 9200)


def test_serve_refuses_in_one_line_what_would_stop_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not start"))
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    code, _, err = run(capsys, "serve", "--data", a_file)
    assert code == 2 and err == f"whaleid: the data folder {a_file} is not a folder\n"

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--data", tmp_path / "data", "--port", port)
    assert code == 2
    assert err.startswith(f"whaleid: cannot listen on 127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1


def test_batch_identify_from_a_folder_resumes_where_it_stopped(
    capsys: pytest.CaptureFixture[str], gallery_dir: Path, queries: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    folder = queries["known"].parent
    code, _, err = run(capsys, "identify", "--from", folder, "--out", out, "--data", gallery_dir)
    assert code == 1  # the corrupted photo and the text file
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(a["image"] for a in first) == sorted(str(p) for p in queries.values())
    known = next(a for a in first if a["image"] == str(queries["known"]))
    assert known["candidates"][0]["individual_id"] == INDIVIDUALS[2]
    assert "4 identified, 0 already" in err

    # A crash: the last answer torn half-way, one photo more to do. The rerun drops the
    # torn line and answers only the two photos it lacks.
    text = out.read_text().splitlines(keepends=True)
    torn = json.loads(text[-1])["image"]
    out.write_text("".join(text[:-1]) + text[-1][:25])
    extra = folder / "later" / "new.png"
    extra.parent.mkdir()
    extra.write_bytes(encode(sighting(INDIVIDUALS[4], seed=12)))
    code, _, err = run(capsys, "identify", "--from", folder, "--out", out, "--data", gallery_dir)
    assert "2 identified, 3 already" in err
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["image"] for a in again] == [a["image"] for a in first[:-1]] + sorted(
        [torn, str(extra)], key=[str(p) for p in sorted(folder.rglob("*.*"))].index
    )


def test_batch_identify_from_a_manifest_needs_only_paths(
    capsys: pytest.CaptureFixture[str], gallery_dir: Path, queries: dict[str, Path], tmp_path: Path
) -> None:
    manifest = tmp_path / "survey.csv"
    manifest.write_text("path,camera\nqueries/known.png,A\nqueries/missing.png,B\n")
    out = tmp_path / "answers.jsonl"
    code, _, err = run(capsys, "identify", "--from", manifest, "--out", out, "--data", gallery_dir)
    assert code == 1
    assert "missing.png" in err  # said, and left for a later run
    assert [json.loads(line)["image"] for line in out.read_text().splitlines()] == [
        str(queries["known"])
    ]
    code, _, err = run(capsys, "identify", "--from", tmp_path / "nowhere", "--data", gallery_dir)
    assert code == 1 and "no such file" in err
