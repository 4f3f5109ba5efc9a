"""Settings of the identification engine (search, verification, open-set decision)."""

from __future__ import annotations

import msgspec


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    neighbours: int = 4
    """K of LNBNN: neighbours that vote per query descriptor; neighbour K+1 normalises."""
    shortlist: int = 20
    """Gallery images re-ranked by spatial verification."""
    inlier_weight: float = 1000.0
    """A photo's score is its LNBNN score plus this times the LNBNN weight of its
    spatially verified matches. The large default ranks by verified evidence and lets
    LNBNN break ties and order the photos nothing verified; on the development sets it
    beat weights of 1-4 (flukes top-1 0.816 against 0.796-0.805)."""
    exact_search_max: int = 300_000
    """Up to this many gallery descriptors the search is exact; above, an IVF index."""
    nprobe: int = 16
    """IVF lists visited per query descriptor (speed against recall)."""
    new_individual_threshold: float = 0.5
    """Below this calibrated probability for the best candidate the answer is
    `new_individual`."""
    roll_angles: tuple[float, ...] = (15.0, -15.0)
    """Roll hypotheses (degrees) for a query that verifies weakly upright: its keypoints
    are described again at each angle and searched, and every photo keeps its best score.
    Upright descriptors tolerate about 8 degrees of camera roll (right-whale top-1 fell
    from 0.53 to 0.43 at 8 degrees and to 0.07 at 22); with these two hypotheses 22 degrees
    kept 0.45. Empty: upright only."""
    roll_below_inliers: int = 10
    """A query whose best photo has fewer verified inliers than this is searched under the
    `roll_angles` too. True matches on the development sets verify a median of 25-45
    inliers, wrong ones 3, so most matched queries are searched once."""
    min_query_features: int = 10
    """A query photo with fewer keypoints than this is answered `low_confidence`: blank,
    blurred or tiny photos hold too little texture for any match to mean anything."""
    calibration_queries: int = 300
    """Gallery images queried against the rest of the gallery to fit the calibration."""
    deep_neighbours: int = 100
    """Nearest deep-embedding entries (photos and centroids) read per query; the
    individuals among them form the deep shortlist."""
    deep_exact_max: int = 50_000
    """Up to this many deep entries the embedding search is exact; above, PQ (a compressed
    scan of every entry, the best candidates re-ranked exactly; reports/scalability.md)."""
    deep_refine_factor: int = 50
    """Above `deep_exact_max`: candidates re-ranked exactly, as a multiple of the
    neighbours asked for (recall against speed; see reports/scalability.md)."""
    top_k: int = 5
    """Candidates returned by default."""
    search_threads: int = 1
    """OpenMP threads of one FAISS search. Concurrent requests already fill the cores,
    and OpenMP threads spinning against each other are far slower than one thread."""
