"""Store and search what the embeddings package makes.

This package owns the SQLite embedding database (the source of truth), the FAISS indexes
derived from it, scoring, spatial verification, calibration and the open-set decision.
It knows nothing of HTTP.
"""
