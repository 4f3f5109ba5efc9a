"""Freed memory is kept for reuse: large short-lived blocks, as SIFT's pyramids are, do
not fault their pages in again each time."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Eight 8 MB blocks held at once and freed, ten times, after a first round that warms the
# allocator: glibc's default gives the 64 MB back to the kernel each round.
_ROUNDS = """
import resource, sys
import numpy as np
from embeddings.allocator import retain_freed_memory

if sys.argv[1] == "retain":
    assert retain_freed_memory()

def rounds():
    for _ in range(10):
        held = [np.ones(1_000_000) for _ in range(8)]
        del held

rounds()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    """Page faults of the rounds in a new process (the setting is the process's)."""
    done = subprocess.run(
        [sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_freed_blocks_are_reused_without_faulting_their_pages_in_again() -> None:
    # 64 MB is 16 384 pages a round. By default a part of them faults in again every
    # round (43 000 faults in all on glibc 2.36); kept, they fault in once, in the
    # warming round.
    default, retained = page_faults("default"), page_faults("retain")
    assert default > 20_000
    assert retained < 2_000
