"""The store's exception hierarchy: one base, one subclass per kind of refusal."""

from __future__ import annotations

__all__ = ["Conflict", "InvalidInput", "NotFound", "StoreError"]


class StoreError(Exception):
    """Anything the store refuses or cannot do."""


class NotFound(StoreError):
    """The named individual or image does not exist."""


class Conflict(StoreError):
    """The operation would clash with existing data (an id already taken, ...)."""


class InvalidInput(StoreError):
    """A value the caller passed is of the wrong type or out of range."""
