"""FAISS searches on one OpenMP thread, whichever thread runs them.

OpenMP's thread count is a setting of each thread: set once where the gallery is opened,
it leaves the server's worker threads (and the threads of roll hypotheses) searching with
a team of every core each. Concurrent requests already fill the cores, and OpenMP teams
spinning against each other are far slower than one thread each.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss

__all__ = ["one_search_thread"]


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
