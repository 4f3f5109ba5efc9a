"""Turn photographs into what the indexer stores.

This package owns image decoding (formats, EXIF orientation, date and GPS, size limits)
and the feature extractors: the weight-free RootSIFT local features and, when models are
installed, deep global embeddings. It knows nothing of HTTP, SQLite or FAISS.
"""
