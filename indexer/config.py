"""The identification settings a user may change (`[engine]` in the config file).

The search's algorithm constants are not settings: they are named in the modules that use
them (`indexer.local_search`, `indexer.deep_search`), each with the reason for its value.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    new_individual_threshold: float = 0.5
    """At or below this calibrated probability for the best candidate the answer is
    `new_individual`."""
    top_k: int = 5
    """Candidates returned by default."""
    max_detections: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Most animals identified in one whole frame (each costs one local search)."""
