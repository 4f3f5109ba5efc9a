"""What every report under reports/ starts with: the command, the date and the machine.

Imported by the scripts beside it (a script's own folder is on `sys.path` when it runs).
"""

from __future__ import annotations

import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from indexer.search_threads import cores

__all__ = ["machine", "report_meta"]


def machine() -> str:
    """The CPU, core count, OS and Python, e.g. "Linux x86_64, 2 cores (AMD EPYC ...)"."""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return (
        f"{platform.system()} {platform.machine()}, {cores()} cores ({model}),"
        f" Python {platform.python_version()}"
    )


def report_meta() -> dict[str, str]:
    """{"date", "machine", "command"} of this run."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python " + shlex.join(sys.argv),  # quoted: a label may hold spaces
    }
