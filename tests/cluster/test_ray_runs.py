"""Enrolment and batch identification on a real Ray cluster: a head and a second worker
process on loopback, started here (`ray.cluster_utils.Cluster`), driven through the
`whaleid` command as a user runs it. The cluster must store and answer exactly what one
process does, and lose nothing when a worker or the command itself is killed."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from tests.cluster.conftest import INDIVIDUALS, PHOTOS, whaleid

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]


def start(*argv: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def catalogue(data: Path) -> tuple[list[tuple], list[tuple]]:
    """The photo rows and feature rows, as stored."""
    with sqlite3.connect(data / "whaleid.sqlite3") as db:
        images = db.execute(
            "SELECT id, sha256, individual_id, source_name, width, height FROM images ORDER BY id"
        ).fetchall()
        features = db.execute("SELECT * FROM features ORDER BY id").fetchall()
    return images, features


def stored(data: Path) -> int:
    try:
        with sqlite3.connect(data / "whaleid.sqlite3", timeout=5) as db:
            return db.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.OperationalError:  # the command has not created it yet
        return 0


def wait_until_stored(data: Path, count: int, run: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 300
    while (done := stored(data)) < count:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the run stored nothing for five minutes"
        time.sleep(0.05)
    return done


def index_bytes(data: Path) -> bytes:
    (index,) = (data / "index").glob("*.faiss")
    return index.read_bytes()


def test_enrol_on_the_cluster_stores_what_one_process_stores(
    cluster: Cluster, photos: Path, one_process: Path, tmp_path: Path
) -> None:
    run = whaleid("enrol", photos, "--data", tmp_path, "--ray", cluster.address)

    assert run.returncode == 0, run.stderr
    assert f"enrolled {len(INDIVIDUALS) * PHOTOS}, duplicates 0, failed 0" in run.stdout
    assert f"{len(INDIVIDUALS) * PHOTOS}/{len(INDIVIDUALS) * PHOTOS}" in run.stderr  # progress
    assert catalogue(tmp_path) == catalogue(one_process)
    assert index_bytes(tmp_path) == index_bytes(one_process)


def test_identify_on_the_cluster_answers_as_one_process(
    cluster: Cluster, photos: Path, one_process: Path, tmp_path: Path
) -> None:
    answers = {}
    for name, extra in (("one", []), ("cluster", ["--ray", cluster.address])):
        out = tmp_path / f"{name}.jsonl"
        run = whaleid("identify", "--from", photos, "--out", out, "--data", one_process, *extra)
        assert run.returncode == 0, run.stderr
        answers[name] = [json.loads(line) for line in out.read_text().splitlines()]
        for answer in answers[name]:
            del answer["timings_ms"]  # the only field that may differ

    assert len(answers["one"]) == len(INDIVIDUALS) * PHOTOS
    assert answers["cluster"] == answers["one"]
    # Each photo is enrolled: its own individual comes first.
    assert all(
        a["candidates"][0]["individual_id"] == Path(a["image"]).parent.name
        for a in answers["cluster"]
    )


def test_index_rebuild_on_the_cluster_re_extracts_and_builds_as_one_process(
    cluster: Cluster, one_process: Path, tmp_path: Path
) -> None:
    """After a settings change every stored photo is described again, on the workers."""
    config = tmp_path / "whaleid.toml"
    config.write_text("[features]\nmax_features = 600\n")
    runs = {}
    for name, extra in (("one", []), ("cluster", ["--ray", cluster.address])):
        data = tmp_path / name
        shutil.copytree(one_process, data)
        run = whaleid("index", "rebuild", "--data", data, "--config", config, *extra)
        assert run.returncode == 0, run.stderr
        assert f"features extracted from {len(INDIVIDUALS) * PHOTOS} stored photos" in run.stdout
        runs[name] = catalogue(data), index_bytes(data)

    assert runs["cluster"] == runs["one"]
    assert len(runs["one"][0][1]) == 2 * len(INDIVIDUALS) * PHOTOS  # old and new features


def test_a_command_killed_mid_run_resumes_without_storing_twice(
    cluster: Cluster, photos: Path, one_process: Path, tmp_path: Path
) -> None:
    run = start("enrol", photos, "--data", tmp_path, "--ray", cluster.address)
    done = wait_until_stored(tmp_path, 3, run)
    run.send_signal(signal.SIGKILL)
    run.wait()
    done = stored(tmp_path)
    assert done < len(INDIVIDUALS) * PHOTOS, "the run ended before it could be killed"

    again = whaleid("enrol", photos, "--data", tmp_path, "--ray", cluster.address)

    assert again.returncode == 0, again.stderr
    assert f"enrolled {len(INDIVIDUALS) * PHOTOS - done}, duplicates {done}" in again.stdout
    assert catalogue(tmp_path) == catalogue(one_process)


def test_a_worker_killed_mid_run_loses_nothing(
    cluster: Cluster, photos: Path, one_process: Path, tmp_path: Path
) -> None:
    """Last in this module: the cluster keeps only its head afterwards."""
    (worker,) = [node for node in cluster.list_all_nodes() if node is not cluster.head_node]
    run = start("enrol", photos, "--data", tmp_path, "--ray", cluster.address)
    wait_until_stored(tmp_path, 3, run)
    cluster.remove_node(worker)  # its raylet and its actor, mid-batch
    killed_at = stored(tmp_path)
    out, err = run.communicate(timeout=600)

    assert killed_at < len(INDIVIDUALS) * PHOTOS, "the run ended before the worker was killed"
    assert run.returncode == 0, err
    assert f"enrolled {len(INDIVIDUALS) * PHOTOS}, duplicates 0, failed 0" in out
    assert catalogue(tmp_path) == catalogue(one_process)
