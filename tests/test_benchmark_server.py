"""The benchmarks' server helper (`scripts/serving.py`) times a server only once it is
ready to identify: /health answers while the catalogue is still opening."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


class _Running:
    """A server process that has not exited."""

    returncode = None

    def poll(self) -> None:
        return None


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    module = importlib.import_module("serving")
    monkeypatch.setattr(module.time, "sleep", lambda _s: None)
    return module


def _answering(
    monkeypatch: pytest.MonkeyPatch, serving: ModuleType, answers: list[httpx.Response | None]
) -> list[str]:
    """httpx.get in `serving` gives `answers` in turn (None: nothing listens yet); returns
    the URLs asked."""
    asked: list[str] = []
    queue: Iterator[httpx.Response | None] = iter(answers)

    def get(url: str, timeout: float) -> httpx.Response:
        asked.append(url)
        answer = next(queue)
        if answer is None:
            raise httpx.ConnectError("refused")
        return answer

    monkeypatch.setattr(serving.httpx, "get", get)
    return asked


def test_it_waits_through_connection_errors_and_an_opening_catalogue(
    monkeypatch: pytest.MonkeyPatch, serving: ModuleType
) -> None:
    starting = httpx.Response(503, json={"status": "starting", "detail": "calibrating"})
    asked = _answering(
        monkeypatch,
        serving,
        [None, starting, starting, httpx.Response(200, json={"status": "ready"})],
    )

    serving.wait_ready("http://127.0.0.1:9", _Running())

    assert asked == ["http://127.0.0.1:9/ready"] * 4


def test_a_catalogue_that_cannot_open_is_an_error_with_the_servers_reason(
    monkeypatch: pytest.MonkeyPatch, serving: ModuleType
) -> None:
    failed = httpx.Response(503, json={"status": "failed", "detail": "database is damaged"})
    _answering(monkeypatch, serving, [failed])

    with pytest.raises(RuntimeError, match="database is damaged"):
        serving.wait_ready("http://127.0.0.1:9", _Running())
