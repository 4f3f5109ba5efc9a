"""FAISS searches on one OpenMP thread, whichever thread runs them, and a query photo's
descriptors searched in parts on every core.

OpenMP's thread count is a setting of each thread: set once where the gallery is opened,
it leaves the server's worker threads (and the threads of roll hypotheses) searching with
a team of every core each. Concurrent requests already fill the cores, and OpenMP teams
spinning against each other are far slower than one thread each. One request alone on
the machine would leave the other cores idle, so its descriptors are split into parts
searched in Python threads (FAISS releases the GIL), each on one OpenMP thread: threads
that wait on each other block instead of spinning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import faiss
import numpy as np

__all__ = ["cores", "in_parts", "one_search_thread"]

_T = TypeVar("_T")

_ROWS_PER_PART = 64
"""Fewest query descriptors worth a thread of their own: a part costs a thread start,
about 0.1 ms, and a query photo's thousand descriptors take 50-250 ms to search."""


def cores() -> int:
    """The cores this process may run on (not the machine's, which a container hides)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def one_search_thread() -> Iterator[None]:
    """Run the FAISS calls inside on one OpenMP thread in the calling thread; what the
    thread had before (a build's every core) comes back after."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def in_parts(
    rows: np.ndarray, search: Callable[[np.ndarray], _T], threads: int | None = None
) -> list[_T]:
    """search(part) for consecutive parts of `rows`, in order, each part in a thread of
    its own on one OpenMP thread.

    Args:
        rows: query rows, searched independently of each other.
        search: searches some of them.
        threads: most parts; None, one for each of `cores()`.
    """
    parts = max(1, min(threads or cores(), len(rows) // _ROWS_PER_PART))
    if parts == 1:
        return [_on_one_thread(search, rows)]
    with ThreadPoolExecutor(parts) as pool:
        return list(
            pool.map(lambda part: _on_one_thread(search, part), np.array_split(rows, parts))
        )


def _on_one_thread(search: Callable[[np.ndarray], _T], rows: np.ndarray) -> _T:
    with one_search_thread():
        return search(rows)
