"""The store's one SQLite connection, guarded by a lock, and its read and write
transactions; the table classes build on it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from indexer.store._errors import Conflict, StoreError

__all__ = ["Connection"]


class Connection:
    """An open database connection; every query goes through `_read` or `_write`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        """Wrap an already configured connection; use `Store.open` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.path = path

    def close(self) -> None:
        """Close the connection. Further calls raise StoreError; closing twice is fine."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may already have rolled back (e.g. on some I/O errors).
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"{self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc
