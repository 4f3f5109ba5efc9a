"""A real Ray cluster for the tests of this folder: a head and a second worker process on
loopback, started here (`ray.cluster_utils.Cluster`), and a catalogue of synthetic
photos enrolled on one process, to compare the cluster's work with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.synthetic import write_folder

# Every process of the cluster, the tests' own included, takes the loopback address as
# its node's (Ray otherwise turns 127.0.0.1 into the machine's outward address). Ray
# reads this when imported, so it is set before the import below.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
from ray.cluster_utils import Cluster

INDIVIDUALS = [f"RW-{i}" for i in range(8)]
PHOTOS = 3
_NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and one worker node, one CPU each: two actors, one on each."""
    started = Cluster(initialize_head=True, head_node_args={**_NODE, "include_dashboard": False})
    started.add_node(**_NODE)
    started.wait_for_nodes()
    yield started
    started.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    write_folder(root, INDIVIDUALS, photos=PHOTOS)
    return root


@pytest.fixture(scope="module")
def one_process(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalogue that `whaleid enrol` builds on one process. Not to be changed."""
    data = tmp_path_factory.mktemp("one-process")
    assert whaleid("enrol", photos, "--data", data).returncode == 0
    return data


def whaleid(*argv: object) -> subprocess.CompletedProcess[str]:
    """Run the `whaleid` command as a user does."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
