"""The plain-torch reference networks and their ONNX export: torch only.

The EfficientNet-B4 ArcFace embedder (timm's parameter layout), the OpenCLIP ViT-B/32
gate (open_clip's layout), strict checkpoint reading, and the export of both to the ONNX
model folders that serving loads. Everything here imports torch and needs the `[models]`
extra; serving (`service`, `indexer`, and the ONNX Runtime modules of `embeddings`) never
imports this package. The one offline exception is `whaleid index import-centroids`,
which reads the checkpoint's `arc.weight` through `checkpoints.read_state_dict`.
"""
