"""Running `whaleid serve` for the benchmarks: a server process, its environment, and
latency percentiles. Imported by the scripts beside it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

__all__ = ["bench_env", "free_port", "percentiles", "server", "wait_ready"]


def bench_env(root: Path, models_dir: Path | None = None) -> dict[str, str]:
    """The servers' and the enrolment's environment: a config file written into `root`
    (with `models_dir` when given)."""
    config = root / ("bench.toml" if models_dir is None else "bench-models.toml")
    # The benchmark's 16 clients share one address: the per-client limit would throttle
    # the very load being measured. Access logs would measure the terminal.
    text = "rate_limit_per_minute = 0\naccess_log = false\n"
    if models_dir is not None:
        text += f"models_dir = {json.dumps(str(models_dir))}\n"
    config.write_text(text)
    return {**os.environ, "WHALEID_CONFIG": str(config)}


@contextmanager
def server(data: Path, env: dict[str, str]) -> Iterator[str]:
    """A `whaleid serve` process on `data` and a free port; yields its base URL once it
    is ready to identify, stops it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "whaleid"),
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=120)


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 600.0) -> None:
    """Return once the server at `url` answers /ready with 200. /health answers as soon
    as the process listens, while the catalogue may still be opening (and requests wait
    or fail): timing from then would time the opening.

    Raises:
        RuntimeError: the process exited, the catalogue could not be opened, or the
            server was not ready within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            response = httpx.get(f"{url}/ready", timeout=5)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            return
        if response is not None and response.json().get("status") == "failed":
            raise RuntimeError(f"the server could not open its catalogue: {response.text}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(times: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}
