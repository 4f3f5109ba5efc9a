"""The `calibrations` table: the latest score calibrations of each extractor and model
combination, as the fitting process encoded them."""

from __future__ import annotations

from indexer.store._checks import check_id
from indexer.store._connection import Connection

__all__ = ["CalibrationTable"]


class CalibrationTable(Connection):
    """Reads and writes of calibrations."""

    def save_calibration(
        self, key: str, data: bytes, *, replacing: int | None = None
    ) -> int | None:
        """Make `data` the calibration of `key`, replacing older ones.

        Args:
            replacing: the id of the calibration of `key` this one was fitted to replace
                (0: none); when another has been saved since, nothing is saved. None
                replaces whatever is there.

        Returns:
            Its id, larger than any id saved before, of any key; None when not saved.
        """
        check_id("key", key)
        with self._write() as conn:
            if replacing is not None:
                (latest,) = conn.execute(
                    "SELECT COALESCE(MAX(id), 0) FROM calibrations WHERE key = ?", (key,)
                ).fetchone()
                if latest != replacing:
                    return None
            cursor = conn.execute(
                "INSERT INTO calibrations(key, data) VALUES (?, ?)", (key, bytes(data))
            )
            new_id = int(cursor.lastrowid or 0)
            conn.execute("DELETE FROM calibrations WHERE key = ? AND id < ?", (key, new_id))
        return new_id

    def calibration(self, key: str) -> tuple[int, bytes] | None:
        """(id, data) of the latest calibration of `key`, or None."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT id, data FROM calibrations WHERE key = ? ORDER BY id DESC LIMIT 1",
                (key,),
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))
