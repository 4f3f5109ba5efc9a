"""The local search's lock: readers together, a writer alone, a waiting writer first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from indexer.read_write_lock import ReadWriteLock

WAIT_S = 5.0


def test_readers_hold_it_together() -> None:
    lock = ReadWriteLock()
    both_inside = threading.Barrier(2, timeout=WAIT_S)

    def read() -> None:
        with lock.reading():
            both_inside.wait()  # broken (BrokenBarrierError) unless both get in at once

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not both_inside.broken


def test_a_writer_waits_for_the_readers_and_holds_new_readers_off() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reader_in, release_reader = threading.Event(), threading.Event()

    def first_reader() -> None:
        with lock.reading():
            reader_in.set()
            release_reader.wait(WAIT_S)
            order.append("first reader out")

    def writer() -> None:
        with lock.writing():
            order.append("writer")

    def late_reader() -> None:
        with lock.reading():
            order.append("late reader")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    assert reader_in.wait(WAIT_S)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    _until(lambda: lock._writers_waiting == 1)
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    release_reader.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert order == ["first reader out", "writer", "late reader"]


def test_writers_exclude_each_other() -> None:
    lock = ReadWriteLock()
    inside = 0
    most = 0
    count = threading.Lock()

    def write() -> None:
        nonlocal inside, most
        for _ in range(200):
            with lock.writing():
                with count:
                    inside += 1
                    most = max(most, inside)
                with count:
                    inside -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert most == 1


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)
