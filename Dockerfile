# CPU image of the whaleid HTTP service on its embedded defaults (weight-free matching).
# Photos, the database and any model files are never baked in: the data folder is a
# volume, so the catalogue outlives the container.
#
#   docker build -t whaleid .
#   docker run -p 8000:8000 -v whaleid-data:/data whaleid
#   # with the exported deep models (see models/README.md):
#   docker run -p 8000:8000 -v whaleid-data:/data -v "$PWD/models:/models:ro" \
#       -e WHALEID_MODELS=/models whaleid
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WHALEID_DATA=/data \
    WHALEID_HOST=0.0.0.0 \
    WHALEID_PORT=8000

# libgomp1: OpenMP runtime of FAISS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY embeddings ./embeddings
COPY indexer ./indexer
COPY service ./service
RUN pip install . \
    && useradd --create-home --uid 10001 whaleid \
    && mkdir -p /data \
    && chown whaleid /data

USER whaleid
VOLUME ["/data"]
EXPOSE 8000
# /health answers while the process lives; the first start on a large catalogue may
# rebuild the index for minutes, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# The default gate and locator are built into the data volume at first start (a few
# seconds; later starts only check the files' sha256).
CMD ["sh", "-c", "whaleid models install && exec whaleid serve"]
