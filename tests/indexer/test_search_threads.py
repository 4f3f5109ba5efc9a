"""Searches on one OpenMP thread each, and a query's rows split over threads."""

from __future__ import annotations

import os
import threading

import faiss
import numpy as np

from indexer.search_threads import _ROWS_PER_PART, cores, in_parts, one_search_thread


def seen(rows: np.ndarray) -> tuple[np.ndarray, int, int]:
    return rows, threading.get_ident(), faiss.omp_get_max_threads()


def test_rows_are_searched_in_consecutive_parts_at_once_each_on_one_openmp_thread() -> None:
    rows = np.arange(10 * _ROWS_PER_PART)
    together = threading.Barrier(3, timeout=10)  # broken unless all three parts run at once

    def waiting(part: np.ndarray) -> tuple[np.ndarray, int, int]:
        together.wait()
        return seen(part)

    faiss.omp_set_num_threads(2)
    parts = in_parts(rows, waiting, threads=3)
    assert len(parts) == 3
    assert np.array_equal(np.concatenate([part for part, _, _ in parts]), rows)
    assert {omp for _, _, omp in parts} == {1}
    assert faiss.omp_get_max_threads() == 2  # the caller's own setting is left alone


def test_few_rows_are_searched_whole_in_the_calling_thread() -> None:
    rows = np.arange(2 * _ROWS_PER_PART - 1)
    [(part, thread, omp)] = in_parts(rows, seen, threads=8)
    assert np.array_equal(part, rows)
    assert (thread, omp) == (threading.get_ident(), 1)
    assert len(in_parts(np.arange(0), seen)) == 1


def test_by_default_there_is_a_part_for_each_core_the_process_may_use() -> None:
    parts = in_parts(np.arange(100 * _ROWS_PER_PART), seen)
    assert len(parts) == min(cores(), 100)
    assert 1 <= cores() <= (os.cpu_count() or 1)


def test_one_search_thread_restores_the_thread_count_it_found() -> None:
    faiss.omp_set_num_threads(2)
    with one_search_thread():
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == 2
