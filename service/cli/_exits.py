"""Exit codes, the signature of a command, and the user error a command raises."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from service.config import Settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Command",
    "CommandError",
    "fail",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Command = Callable[[argparse.Namespace, Settings], int]


class CommandError(Exception):
    """A user error found by a command; `main` prints it and exits 1."""


def fail(message: str, code: int) -> int:
    print(f"whaleid: {message}", file=sys.stderr)
    return code
