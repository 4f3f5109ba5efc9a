"""The `individuals` table: the catalogue's animals, their renames, merges and deletion."""

from __future__ import annotations

import sqlite3

from indexer.store._checks import check_individual_id, check_optional_text
from indexer.store._connection import Connection
from indexer.store._errors import Conflict, InvalidInput, NotFound
from indexer.store._rows import INDIVIDUAL_SELECT, Individual, individual_row, utc_now
from indexer.store._schema import bump_epoch

__all__ = ["IndividualTable"]


class IndividualTable(Connection):
    """Reads and writes of individuals."""

    def individual(self, individual_id: str) -> Individual | None:
        """The individual with this id, or None."""
        with self._read() as conn:
            row = conn.execute(f"{INDIVIDUAL_SELECT} WHERE i.id = ?", (individual_id,)).fetchone()
        return None if row is None else individual_row(row)

    def list_individuals(
        self,
        species: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
    ) -> list[Individual]:
        """A page of individuals ordered by id.

        Args:
            species: only individuals of this species; None for all.
            limit: at most this many (>= 0).
            offset: skip this many first (>= 0).
            search: only individuals whose id or name contains this text, ASCII letters
                in either case (other characters as they are); None for all.

        Returns:
            The page, possibly empty.
        """
        if limit < 0 or offset < 0:
            raise InvalidInput(f"limit and offset must be >= 0, got {limit} and {offset}")
        conditions: list[str] = []
        args: list[str | int] = []
        if species is not None:
            conditions.append("i.species = ?")
            args.append(species)
        if search:
            # instr, not LIKE: '%' and '_' in the text are matched as themselves.
            conditions.append(
                "(instr(lower(i.id), lower(?)) > 0 OR instr(lower(COALESCE(i.name, '')),"
                " lower(?)) > 0)"
            )
            args += [search, search]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._read() as conn:
            rows = conn.execute(
                f"{INDIVIDUAL_SELECT}{where} ORDER BY i.id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [individual_row(r) for r in rows]

    def upsert_individual(
        self, individual_id: str, species: str | None = None, name: str | None = None
    ) -> Individual:
        """Create an individual, or update the fields given (None leaves a field alone).

        Returns:
            The individual as stored afterwards.
        """
        check_individual_id("individual_id", individual_id)
        check_optional_text("species", species)
        check_optional_text("name", name)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO individuals(id, species, name, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET"
                " species = COALESCE(excluded.species, species),"
                " name = COALESCE(excluded.name, name)",
                (individual_id, species, name, utc_now()),
            )
            row = conn.execute(f"{INDIVIDUAL_SELECT} WHERE i.id = ?", (individual_id,)).fetchone()
        return individual_row(row)

    def rename_individual(self, old_id: str, new_id: str) -> None:
        """Give an individual a new id, moving its images; renaming to itself is a no-op.

        Raises:
            NotFound: `old_id` does not exist.
            Conflict: `new_id` is already taken.
        """
        check_individual_id("new_id", new_id)
        with self._write() as conn:
            if not _individual_exists(conn, old_id):
                raise NotFound(f"individual {old_id!r} not found")
            if old_id == new_id:
                return
            if _individual_exists(conn, new_id):
                raise Conflict(f"individual {new_id!r} already exists")
            # Insert-move-delete keeps every foreign key satisfied at each statement.
            conn.execute(
                "INSERT INTO individuals(id, species, name, created_at)"
                " SELECT ?, species, name, created_at FROM individuals WHERE id = ?",
                (new_id, old_id),
            )
            _move_individual(conn, old_id, new_id)
            conn.execute("DELETE FROM individuals WHERE id = ?", (old_id,))

    def merge_individuals(self, source_id: str, target_id: str) -> int:
        """Relabel every image of `source_id` as `target_id`, then delete `source_id`.

        The target keeps its species and name; those it lacks are taken from the source.

        Returns:
            How many images moved.

        Raises:
            NotFound: either individual does not exist.
            Conflict: source and target are the same.
        """
        with self._write() as conn:
            for role, ident in (("source", source_id), ("target", target_id)):
                if not _individual_exists(conn, ident):
                    raise NotFound(f"{role} individual {ident!r} not found")
            if source_id == target_id:
                raise Conflict(f"cannot merge individual {source_id!r} into itself")
            conn.execute(
                "UPDATE individuals SET"
                " species = COALESCE(species, (SELECT species FROM individuals WHERE id = ?)),"
                " name = COALESCE(name, (SELECT name FROM individuals WHERE id = ?))"
                " WHERE id = ?",
                (source_id, source_id, target_id),
            )
            moved = _move_individual(conn, source_id, target_id)
            conn.execute("DELETE FROM individuals WHERE id = ?", (source_id,))
        return int(moved)

    def delete_individual(self, individual_id: str) -> int:
        """Delete an individual with all its images and their features.

        Returns:
            How many images were deleted.

        Raises:
            NotFound: no such individual.
        """
        with self._write() as conn:
            if not _individual_exists(conn, individual_id):
                raise NotFound(f"individual {individual_id!r} not found")
            deleted = conn.execute(
                "DELETE FROM images WHERE individual_id = ?", (individual_id,)
            ).rowcount
            centroids = conn.execute(
                "DELETE FROM centroids WHERE individual_id = ?", (individual_id,)
            ).rowcount
            conn.execute("DELETE FROM individuals WHERE id = ?", (individual_id,))
            if deleted or centroids:
                bump_epoch(conn)
        return int(deleted)


def _move_individual(conn: sqlite3.Connection, old_id: str, new_id: str) -> int:
    """Relabel images and centroids; bumps the epoch if anything moved. Returns the
    number of images moved."""
    moved = conn.execute(
        "UPDATE images SET individual_id = ? WHERE individual_id = ?", (new_id, old_id)
    ).rowcount
    centroids = conn.execute(
        "UPDATE centroids SET individual_id = ? WHERE individual_id = ?", (new_id, old_id)
    ).rowcount
    if moved or centroids:
        bump_epoch(conn)
    return int(moved)


def _individual_exists(conn: sqlite3.Connection, individual_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM individuals WHERE id = ?", (individual_id,)).fetchone()
    return row is not None
