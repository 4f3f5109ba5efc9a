"""Fixtures shared by the test packages."""

from __future__ import annotations

import pytest

from tests.deep_models import RandomModels, make_random_models


@pytest.fixture(scope="session")
def random_models(tmp_path_factory: pytest.TempPathFactory) -> RandomModels:
    """Random-weight checkpoints and their exported model folders (about 20 s, once).
    Tests must not modify them; copy a folder first."""
    return make_random_models(tmp_path_factory.mktemp("random-models"))
