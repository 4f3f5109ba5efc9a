"""The Python clients (`service.client`) against a live `whaleid serve` process, and their
retry rules against httpx's mock transport (no server, no waiting).

The live tests run each scenario with the blocking and the asyncio client, on one server
for the module; the crash test starts and kills servers of its own. Photos are synthetic.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import inspect
import io
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest
from PIL import Image

import service.client._async as async_module
import service.client._sync as sync_module
from indexer.results import EnrolResult
from service.client import (
    MAX_RETRY_DELAY,
    ApiError,
    AsyncWhaleIdClient,
    ServiceUnavailable,
    WhaleIdClient,
)
from tests.synthetic import encode, fluke, perturb

STARTUP_TIMEOUT = 60.0


# ---------------------------------------------------------------------- photos


@functools.cache
def _pattern(individual: str) -> np.ndarray:
    return fluke(individual)


@functools.cache
def photo(individual: str, seed: int) -> bytes:
    """`encode(sighting(individual, seed), "JPEG")`, with each individual's pattern drawn
    once: the concurrency test needs hundreds of photos."""
    return encode(perturb(_pattern(individual), seed), "JPEG")


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


# ---------------------------------------------------------------------- live servers


class Server:
    """A `whaleid serve` process on a free local port.

    Args:
        data_dir: the data folder (created by the service if missing).
        log: file that receives the process's stdout and stderr.
        settings: more lines of its TOML configuration.
    """

    def __init__(self, data_dir: Path, log: Path, settings: str = "") -> None:
        self.log = log
        config = data_dir.parent / f"{data_dir.name}.toml"
        # The live tests send hundreds of requests a minute from one address.
        config.write_text("rate_limit_per_minute = 0\n" + settings, encoding="utf-8")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHALEID_")}
        env |= {"WHALEID_DATA": str(data_dir), "WHALEID_WORKERS": "2"}
        command = [sys.executable, "-m", "service.cli", "serve", "--config", str(config)]
        command += ["--data", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Until /ready is 200: /health answers as soon as the process listens, but the
        catalogue and the models open in the background (503 meanwhile)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the server was not ready in {STARTUP_TIMEOUT} s:\n{self.tail()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the process with `sig` and wait for it to end."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("live")
    running = Server(root / "data", root / "server.log")
    try:
        yield running
    finally:
        running.stop()


class Blocking:
    """Runs an `AsyncWhaleIdClient`'s coroutines to completion on one event loop, so that
    one test body covers both clients (async iterators come back as lists)."""

    def __init__(self, client: AsyncWhaleIdClient, runner: asyncio.Runner) -> None:
        self._client = client
        self._runner = runner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isasyncgen(result):
                return self._runner.run(_collect(result))
            return self._runner.run(result)

        return call


async def _collect(items: Any) -> list:
    return [item async for item in items]


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, server: Server) -> Iterator[Any]:
    """A client of the module's server: `WhaleIdClient`, or `AsyncWhaleIdClient` driven
    through `Blocking`."""
    if request.param == "sync":
        with WhaleIdClient(server.url) as sync_client:
            yield sync_client
        return
    with asyncio.Runner() as runner:
        async_client = AsyncWhaleIdClient(server.url)
        try:
            yield Blocking(async_client, runner)
        finally:
            runner.run(async_client.aclose())


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A prefix for the catalogue ids of one test run, as the tests share one server."""
    return request.node.name.removeprefix("test_") + "-"


# ---------------------------------------------------------------------- live: the API


def test_probes_and_metrics(client: Any) -> None:
    assert client.health().status == "ok"
    ready = client.ready()
    assert ready.status == "ready"
    assert ready.models == []
    assert ready.extractor.name == "rootsift"
    assert "whaleid_gallery_images" in client.metrics()


def test_enrol_then_identify_finds_the_individual(client: Any, ns: str, tmp_path: Path) -> None:
    whale = ns + "HW-1"
    first = client.enrol(photo(whale, 0), whale, species="humpback_whale", name="a.jpg")
    on_disk = tmp_path / "DSC_0001.jpg"
    on_disk.write_bytes(photo(whale, 1))
    second = client.enrol(on_disk, whale)
    again = client.enrol(photo(whale, 0), whale)

    assert isinstance(first, EnrolResult)
    assert (first.individual_id, first.created) == (whale, True)
    assert second.created is True
    assert (again.image_id, again.created) == (first.image_id, False)
    assert client.image(second.image_id).source_name == "DSC_0001.jpg"

    answer = client.identify(photo(whale, 7), name="query.jpg", top_k=3)
    assert answer.image == "query.jpg"
    assert answer.decision == "match"
    assert 1 <= len(answer.candidates) <= 3
    best = answer.candidates[0]
    assert (best.individual_id, best.species) == (whale, "humpback_whale")
    assert best.evidence.image_id in {first.image_id, second.image_id}


def test_batch_over_photos_and_a_zip(client: Any, ns: str, tmp_path: Path) -> None:
    whales = [ns + f"HW-{i}" for i in range(3)]
    for whale in whales:
        client.enrol(photo(whale, 0), whale)
    on_disk = tmp_path / "third.jpg"
    on_disk.write_bytes(photo(whales[2], 5))

    answers = list(client.identify_batch([photo(whales[0], 5), photo(whales[1], 5), on_disk]))
    assert [a.image for a in answers] == ["photo-0", "photo-1", "third.jpg"]
    assert [a.candidates[0].individual_id for a in answers] == whales

    archive = make_zip(
        {
            "survey/a.jpg": photo(whales[1], 6),
            "survey/notes.txt": b"not a photo",
            "b.jpg": photo(whales[0], 6),
        }
    )
    zipped = list(client.identify_batch([photo(whales[2], 6)], archive=archive, top_k=1))
    assert [a.image for a in zipped] == ["photo-0", "survey/a.jpg", "survey/notes.txt", "b.jpg"]
    assert [a.decision for a in zipped] == ["match", "match", "rejected", "match"]
    assert zipped[2].rejection_reason == "unsupported_format"
    assert [len(a.candidates) for a in zipped] == [1, 1, 0, 1]
    assert zipped[3].candidates[0].individual_id == whales[0]


def test_catalogue_create_list_rename_merge_delete(client: Any, ns: str) -> None:
    # Ids are free text; the client quotes them into the path.
    first, second = ns + "FW 1?#ä", ns + "FW-2"
    created = client.create_individual(first, species=ns + "fin_whale", name="Ruby")
    assert (created.id, created.name, created.image_count) == (first, "Ruby", 0)
    client.create_individual(second, species=ns + "fin_whale")
    added = client.add_images(first, [photo(first, 0), photo(first, 1)])
    assert [r.created for r in added] == [True, True]
    client.enrol(photo(second, 0), second)

    page = client.list_individuals(species=ns + "fin_whale", limit=1)
    assert [i.id for i in page.items] == [first]
    assert page.next_offset == 1
    rest = client.list_individuals(species=ns + "fin_whale", limit=1, offset=1)
    assert ([i.id for i in rest.items], rest.next_offset) == ([second], None)
    found = client.list_individuals(species=ns + "fin_whale", search="ruby")
    assert [i.id for i in found.items] == [first]

    renamed = client.update_individual(first, new_id=ns + "FW-1", name="Ruby II")
    assert (renamed.id, renamed.name, renamed.species) == (ns + "FW-1", "Ruby II", ns + "fin_whale")
    detail = client.individual(ns + "FW-1")
    assert detail.individual.image_count == 2
    assert {image.id for image in detail.images} == {r.image_id for r in added}
    assert client.identify(photo(first, 5)).candidates[0].individual_id == ns + "FW-1"

    merged = client.merge(ns + "FW-1", second)
    assert (merged.moved_images, merged.individual.image_count) == (1, 3)
    assert client.identify(photo(second, 5)).candidates[0].individual_id == ns + "FW-1"
    with pytest.raises(ApiError) as gone:
        client.individual(second)
    assert gone.value.status_code == 404

    assert client.delete_image(added[0].image_id) is None
    assert client.individual(ns + "FW-1").individual.image_count == 2
    assert client.delete_individual(ns + "FW-1").deleted_images == 2
    assert client.list_individuals(species=ns + "fin_whale").items == []


@pytest.mark.parametrize("suffix", ["100#2", "inner space", "back\\slash", "&a=b;c", "q?x=1"])
def test_awkward_ids_reach_their_individual(client: Any, ns: str, suffix: str) -> None:
    whale = ns + suffix
    client.create_individual(whale)

    assert client.individual(whale).individual.id == whale
    assert client.update_individual(whale, name="x").id == whale


@pytest.mark.parametrize("whale", [".", "..", "tab\there", "   ", "x" * 129, "100%2F"])
def test_ids_that_are_no_path_segment_or_unreadable_are_refused(client: Any, whale: str) -> None:
    with pytest.raises(ApiError) as refused:
        client.create_individual(whale)
    assert refused.value.status_code == 400


def test_id_with_a_slash_is_refused(client: Any, ns: str) -> None:
    # An id is one path segment of the API; with a slash it could never be read again.
    with pytest.raises(ApiError) as refused:
        client.create_individual(ns + "a/b")
    assert (refused.value.status_code, refused.value.error) == (400, "bad_request")


def test_review_confirm_and_no_match(client: Any, ns: str) -> None:
    whale = ns + "HW-1"
    client.enrol(photo(whale, 0), whale)

    confirmed = client.review(photo(whale, 3), "confirm", individual_id=whale)
    assert (confirmed.individual_id, confirmed.created_individual) == (whale, False)
    assert confirmed.created_image is True
    assert client.individual(whale).individual.image_count == 2

    new = client.review(photo(ns + "HW-9", 0), "no_match", individual_id=ns + "HW-9")
    assert (new.individual_id, new.created_individual) == (ns + "HW-9", True)
    assert client.identify(photo(ns + "HW-9", 4)).candidates[0].individual_id == ns + "HW-9"


def test_export_csv_and_darwin_core(client: Any, ns: str) -> None:
    whale, species = ns + "HW-1", ns + "humpback"
    first = client.enrol(photo(whale, 0), whale, species=species)
    second = client.enrol(photo(whale, 1), whale)

    table = list(csv.DictReader(io.StringIO(client.export("csv", species=species))))
    assert [row["individual_id"] for row in table] == [whale, whale]
    assert {row["image_id"] for row in table} == {str(first.image_id), str(second.image_id)}
    dwc = list(csv.DictReader(io.StringIO(client.export(format="dwc", species=species))))
    assert [row["organismID"] for row in dwc] == [whale, whale]
    assert all(row["occurrenceID"] for row in dwc)


def test_image_file_and_thumbnail(client: Any, ns: str) -> None:
    whale = ns + "HW-1"
    content = photo(whale, 0)
    result = client.enrol(content, whale)

    assert client.image_file(result.image_id) == content
    assert client.image(result.image_id).file_bytes == len(content)
    for size, expected in ((None, 256), (64, 64)):
        thumb = client.thumbnail(result.image_id, size)
        with Image.open(io.BytesIO(thumb)) as image:
            assert (image.format, max(image.size)) == ("JPEG", expected)
    with pytest.raises(ApiError) as missing:
        client.image_file(10**9)
    assert (missing.value.status_code, missing.value.error) == (404, "not_found")
    with pytest.raises(ApiError) as too_big:
        client.thumbnail(result.image_id, 5000)
    assert (too_big.value.status_code, too_big.value.error) == (400, "bad_request")


@pytest.mark.parametrize(
    ("call", "status", "error"),
    [
        pytest.param(lambda c, ns: c.individual(ns + "nobody"), 404, "not_found", id="individual"),
        pytest.param(lambda c, ns: c.image(10**9), 404, "not_found", id="image"),
        pytest.param(lambda c, ns: c.delete_image(10**9), 404, "not_found", id="delete-image"),
        pytest.param(lambda c, ns: c.merge(ns + "x", ns + "x"), 404, "not_found", id="merge"),
        pytest.param(lambda c, ns: c.create_individual(ns + "dup"), 409, "conflict", id="dup"),
        pytest.param(lambda c, ns: c.create_individual(" "), 400, "bad_request", id="empty-id"),
        pytest.param(
            lambda c, ns: c.identify(photo("q", 0), top_k=0), 400, "bad_request", id="top-k"
        ),
        pytest.param(lambda c, ns: c.list_individuals(limit=0), 400, "bad_request", id="page-size"),
        pytest.param(
            lambda c, ns: c.enrol(b"%PDF-1.7", ns + "x"), 422, "unsupported_format", id="pdf"
        ),
        pytest.param(
            lambda c, ns: c.review(photo("q", 0), "confirm"), 400, "bad_request", id="review"
        ),
    ],
)
def test_error_answers_raise_api_error_with_the_code(
    client: Any, ns: str, call: Callable[[Any, str], object], status: int, error: str
) -> None:
    client.create_individual(ns + "dup")

    with pytest.raises(ApiError) as raised:
        call(client, ns)

    assert (raised.value.status_code, raised.value.error) == (status, error)
    assert raised.value.detail
    assert not isinstance(raised.value, ServiceUnavailable)


# ---------------------------------------------------------------------- live: load


def test_concurrent_clients_leave_a_consistent_catalogue(server: Server) -> None:
    """16 threads, 500 mixed requests; then every acknowledged enrolment is there."""
    existing = [f"C-{i}" for i in range(4)]
    stored: dict[str, set[int]] = {}
    with WhaleIdClient(server.url) as setup:
        for whale in existing:
            stored[whale] = {setup.enrol(photo(whale, 0), whale).image_id}
    rng = random.Random(0)
    # New individuals get two photos each, sent from different workers at about the same
    # time: the individual is created by whichever arrives first.
    new = [("enrol", f"N-{i}", seed) for i in range(20) for seed in (0, 1)]
    more = [("enrol", existing[i % 4], 100 + i) for i in range(60)]
    # Photo work dominates the run time on 2 cores; reads of the catalogue are cheap.
    reads = [("identify", rng.choice(existing), 200 + i) for i in range(50)]
    reads += [("list", "", 0)] * 175 + [("get", rng.choice(existing), 0) for _ in range(175)]
    ops = new + more + reads
    rng.shuffle(ops)
    assert len(ops) == 500
    for kind, whale, seed in ops:  # rendered before the clock starts
        if kind in ("enrol", "identify"):
            photo(whale, seed)

    def work(share: list[tuple[str, str, int]]) -> tuple[list[tuple[int, EnrolResult]], list[str]]:
        """Send one worker's requests; its enrolments (seed, result), and its refusals."""
        enrolled: list[tuple[int, EnrolResult]] = []
        refused: list[str] = []
        # Sent once: a 5xx must surface as an error, not be retried away.
        with WhaleIdClient(server.url, retries=0) as client:
            for kind, whale, seed in share:
                try:
                    if kind == "enrol":
                        enrolled.append((seed, client.enrol(photo(whale, seed), whale)))
                    elif kind == "identify":
                        client.identify(photo(whale, seed))
                    elif kind == "list":
                        client.list_individuals(limit=50)
                    else:
                        client.individual(whale)
                except ApiError as exc:
                    refused.append(f"{kind} {whale}/{seed}: {exc}")
        return enrolled, refused

    # Anything but an ApiError raised in a worker comes out of `map` and fails the test.
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(work, [ops[i::16] for i in range(16)]))
    assert [line for _, refused in outcomes for line in refused] == []
    results = [item for enrolled, _ in outcomes for item in enrolled]
    assert len(results) == 100
    assert all(result.created for _, result in results)
    acknowledged = [
        (r.individual_id, r.image_id, photo(r.individual_id, seed)) for seed, r in results
    ]
    for whale, image_id, _ in acknowledged:
        stored.setdefault(whale, set()).add(image_id)
    with WhaleIdClient(server.url) as client:
        for whale, image_ids in stored.items():
            detail = client.individual(whale)
            assert detail.individual.image_count == len(image_ids), whale
            assert {image.id for image in detail.images} == image_ids, whale

        everyone = []
        page = client.list_individuals(limit=500)
        everyone += page.items
        while page.next_offset is not None:
            page = client.list_individuals(limit=500, offset=page.next_offset)
            everyone += page.items
        counts = client.ready().counts
        assert counts.stored_images == sum(i.image_count for i in everyone)
        assert counts.images == counts.stored_images
        assert counts.individuals == sum(1 for i in everyone if i.image_count)

        newcomer = next(item for item in acknowledged if item[0].startswith("N-"))
        regular = next(item for item in acknowledged if item[0].startswith("C-"))
        for whale, image_id, content in (newcomer, regular):
            best = client.identify(content).candidates[0]
            assert (best.individual_id, best.evidence.image_id) == (whale, image_id)


# ---------------------------------------------------------------------- live: crash


def test_acknowledged_enrolments_survive_sigkill(tmp_path: Path) -> None:
    """Enrol in a loop, SIGKILL the server mid-way, restart it on the same folder: every
    enrolment answered 201 is there and searchable."""
    data, log = tmp_path / "data", tmp_path / "server.log"
    queue = [(f"K-{i % 5}", i) for i in range(60)]
    for whale, seed in queue:
        photo(whale, seed)
    first = Server(data, log)
    acknowledged: list[tuple[EnrolResult, bytes]] = []
    stopped: list[ApiError] = []
    enough = threading.Event()

    def enrol_until_killed() -> None:
        with WhaleIdClient(first.url, retries=0, timeout=30) as client:
            for whale, seed in queue:
                try:
                    result = client.enrol(photo(whale, seed), whale)
                except ApiError as exc:  # ServiceUnavailable once the server is gone
                    stopped.append(exc)
                    return
                acknowledged.append((result, photo(whale, seed)))
                if len(acknowledged) >= 20:
                    enough.set()
        enough.set()

    enroller = threading.Thread(target=enrol_until_killed)
    try:
        enroller.start()
        assert enough.wait(60), "20 enrolments were not acknowledged in 60 s"
        first.stop(signal.SIGKILL)
        enroller.join(30)
    finally:
        first.stop(signal.SIGKILL)
    assert len(stopped) == 1 and isinstance(stopped[0], ServiceUnavailable), stopped
    assert 20 <= len(acknowledged) < len(queue)
    assert all(result.created for result, _ in acknowledged)  # answered 201

    second = Server(data, log)
    try:
        with WhaleIdClient(second.url) as client:
            counts = client.ready().counts
            # The enrolment in flight at the kill may or may not have been committed.
            assert counts.stored_images in (len(acknowledged), len(acknowledged) + 1)
            assert counts.images == counts.stored_images
            for result, content in acknowledged:
                assert client.image(result.image_id).individual_id == result.individual_id
                assert client.image_file(result.image_id) == content
                best = client.identify(content, top_k=1).candidates[0]
                assert (best.individual_id, best.evidence.image_id) == (
                    result.individual_id,
                    result.image_id,
                )
    finally:
        second.stop()


# ---------------------------------------------------------------------- retries (no server)


class Script:
    """A mock service answering from a list, recording each request it receives."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def unavailable(**headers: str) -> httpx.Response:
    body = {"status_code": 503, "error": "service_unavailable", "detail": "busy"}
    return httpx.Response(503, json=body, headers=headers)


ENROLLED = {"image_id": 1, "individual_id": "HW-1", "created": True}
PAGE = {"items": [], "limit": 100, "offset": 0, "next_offset": None}
ANSWER = {
    "image": "photo",
    "decision": "new_individual",
    "extractor": {"name": "rootsift", "version": "1"},
}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry waits, recorded instead of slept."""
    waited: list[float] = []

    async def async_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(sync_module, "_sleep", waited.append)
    monkeypatch.setattr(async_module, "_async_sleep", async_sleep)
    return waited


Invoke = Callable[[Any], Any]


def call_sync(script: Script, invoke: Invoke, **options: Any) -> Any:
    """`invoke(client)` on a `WhaleIdClient` answered by `script`; iterators are drained."""
    transport = httpx.MockTransport(script)
    with WhaleIdClient("http://whaleid.test", transport=transport, **options) as client:
        result = invoke(client)
        return list(result) if inspect.isgenerator(result) else result


def call_async(script: Script, invoke: Invoke, **options: Any) -> Any:
    """`call_sync` with an `AsyncWhaleIdClient`."""

    async def run() -> Any:
        transport = httpx.MockTransport(script)
        async with AsyncWhaleIdClient(
            "http://whaleid.test", transport=transport, **options
        ) as client:
            result = invoke(client)
            if inspect.isasyncgen(result):
                return [item async for item in result]
            return await result

    return asyncio.run(run())


CALLERS = [pytest.param(call_sync, id="sync"), pytest.param(call_async, id="async")]


@pytest.mark.parametrize("call", CALLERS)
@pytest.mark.parametrize(
    ("invoke", "ok"),
    [
        pytest.param(
            lambda c: c.identify(b"jpeg"), lambda: httpx.Response(200, json=ANSWER), id="identify"
        ),
        pytest.param(
            lambda c: c.identify_batch([b"jpeg"]),
            lambda: httpx.Response(200, content=msgspec.json.encode(ANSWER) + b"\n"),
            id="batch",
        ),
        pytest.param(
            lambda c: c.list_individuals(), lambda: httpx.Response(200, json=PAGE), id="get"
        ),
        pytest.param(lambda c: c.delete_image(7), lambda: httpx.Response(204), id="delete"),
    ],
)
def test_a_503_is_retried_for_calls_that_change_nothing(
    call: Callable[..., Any],
    invoke: Invoke,
    ok: Callable[[], httpx.Response],
    sleeps: list[float],
) -> None:
    script = Script(unavailable(), ok())

    call(script, invoke, backoff=0.5)

    assert len(script.requests) == 2
    assert len(sleeps) == 1
    assert 0.25 <= sleeps[0] <= 0.5


@pytest.mark.parametrize("call", CALLERS)
@pytest.mark.parametrize(
    "invoke",
    [
        pytest.param(lambda c: c.enrol(b"jpeg", "HW-1"), id="enrol"),
        pytest.param(lambda c: c.review(b"jpeg", "confirm", individual_id="HW-1"), id="review"),
        pytest.param(lambda c: c.create_individual("HW-1"), id="create"),
        pytest.param(lambda c: c.merge("HW-1", "HW-2"), id="merge"),
        pytest.param(lambda c: c.update_individual("HW-1", name="Ruby"), id="patch"),
        pytest.param(lambda c: c.add_images("HW-1", [b"jpeg"]), id="add-images"),
    ],
)
def test_changes_are_never_retried(
    call: Callable[..., Any], invoke: Invoke, sleeps: list[float]
) -> None:
    script = Script(unavailable(), httpx.Response(201, json=ENROLLED))

    with pytest.raises(ApiError) as raised:
        call(script, invoke)

    assert (raised.value.status_code, raised.value.error, raised.value.detail) == (
        503,
        "service_unavailable",
        "busy",
    )
    assert len(script.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("call", CALLERS)
def test_a_lost_connection_is_not_retried_for_enrol(
    call: Callable[..., Any], sleeps: list[float]
) -> None:
    script = Script(httpx.ReadError("connection reset"), httpx.Response(201, json=ENROLLED))

    with pytest.raises(ServiceUnavailable):
        call(script, lambda c: c.enrol(b"jpeg", "HW-1"))

    assert len(script.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("call", CALLERS)
def test_connection_failures_are_retried_then_raise_service_unavailable(
    call: Callable[..., Any], sleeps: list[float]
) -> None:
    script = Script(*[httpx.ConnectError("refused")] * 4)

    with pytest.raises(ServiceUnavailable) as raised:
        call(script, lambda c: c.ready(), retries=3, backoff=1.0)

    assert (raised.value.status_code, raised.value.error) == (503, "unavailable")
    assert len(script.requests) == 4
    # The step doubles; each wait is drawn between half and all of its step.
    assert len(sleeps) == 3
    assert all(step / 2 <= s <= step for s, step in zip(sleeps, [1.0, 2.0, 4.0], strict=True))


@pytest.mark.parametrize("call", CALLERS)
@pytest.mark.parametrize(
    ("status", "headers", "waited"),
    [
        pytest.param(503, {"Retry-After": "2"}, 2.0, id="retry-after"),
        pytest.param(503, {"Retry-After": "86400"}, MAX_RETRY_DELAY, id="capped"),
        pytest.param(429, {"RateLimit-Reset": "7"}, 7.0, id="rate-limit-reset"),
        pytest.param(429, {"Retry-After": "soon"}, None, id="unreadable"),
    ],
)
def test_the_wait_honours_what_the_service_asks_but_is_capped(
    call: Callable[..., Any],
    status: int,
    headers: dict[str, str],
    waited: float | None,
    sleeps: list[float],
) -> None:
    refusal = {"status_code": status, "error": "too_many_requests", "detail": "slow down"}
    script = Script(
        httpx.Response(status, json=refusal, headers=headers), httpx.Response(200, json=PAGE)
    )

    page = call(script, lambda c: c.list_individuals(), backoff=0.5)

    assert page.items == []
    if waited is None:  # the header cannot be read: the backoff applies
        assert len(sleeps) == 1
        assert 0.25 <= sleeps[0] <= 0.5
    else:
        assert sleeps == [waited]


@pytest.mark.parametrize("call", CALLERS)
def test_retries_give_up_with_the_last_answer(
    call: Callable[..., Any], sleeps: list[float]
) -> None:
    script = Script(*[httpx.Response(502, text="<html>bad gateway</html>")] * 3)

    with pytest.raises(ApiError) as raised:
        call(script, lambda c: c.health(), retries=2)

    assert (raised.value.status_code, raised.value.error) == (502, "bad_gateway")
    assert raised.value.detail == "<html>bad gateway</html>"
    assert len(script.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("call", CALLERS)
@pytest.mark.parametrize(
    ("individual_id", "path"),
    [
        ("HW-1", b"/v1/individuals/HW-1"),
        ("a/b", b"/v1/individuals/a%2Fb"),
        ("x?y#z w", b"/v1/individuals/x%3Fy%23z%20w"),
        ("..", b"/v1/individuals/%2E%2E"),
    ],
)
def test_key_header_and_quoted_ids(
    call: Callable[..., Any], individual_id: str, path: bytes
) -> None:
    script = Script(httpx.Response(200, json={"deleted_images": 0}))

    call(script, lambda c: c.delete_individual(individual_id), api_key="s3cret")

    request = script.requests[0]
    assert request.headers["X-API-Key"] == "s3cret"
    assert request.url.raw_path == path


@pytest.mark.parametrize("call", CALLERS)
def test_a_batch_that_ends_in_an_error_line_raises(call: Callable[..., Any]) -> None:
    error = {"status_code": 413, "error": "too_large", "detail": "the archive is too large"}
    stream = msgspec.json.encode(ANSWER) + b"\n" + msgspec.json.encode(error) + b"\n"
    script = Script(httpx.Response(200, content=stream))

    with pytest.raises(ApiError) as raised:
        call(script, lambda c: c.identify_batch(archive=b"PK"))

    assert (raised.value.status_code, raised.value.error) == (413, "too_large")


@pytest.mark.parametrize("call", CALLERS)
def test_a_batch_needs_photos_or_an_archive(call: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="photos, an archive"):
        call(Script(), lambda c: c.identify_batch([]))
