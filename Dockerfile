# syntax=docker/dockerfile:1
# GRAM serve: the FastAPI server on the bundled checkpoints, run as a non-root user.
#   CPU (default):  docker build -t gram-serve:cpu .
#   CUDA:           docker build --build-arg DEVICE=cuda -t gram-serve:cuda .
#                   (PyPI's Linux torch wheel bundles the CUDA runtime; the host needs the NVIDIA
#                   driver and container toolkit: docker run --gpus all ...)
# Settings are GRAM_* environment variables (server/settings.py); readiness is /readyz.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG DEVICE=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRAM_HOST=0.0.0.0 \
    GRAM_PORT=8000 \
    GRAM_CHECKPOINT_DIR=/app/checkpoints

WORKDIR /app

# Dependencies first, so code edits do not reinstall them. torch at the pinned version: on CPU from
# the CPU-only index (the PyPI wheel would pull several GB of CUDA libraries), on CUDA from PyPI with
# its CUDA libraries. Everything else exactly as requirements-runtime.lock says, hashes checked.
COPY requirements.txt requirements-runtime.lock ./
RUN set -eux; \
    torch_pin="$(grep -E '^torch==' requirements.txt)"; \
    case "$DEVICE" in \
      cpu) pip install --index-url "$TORCH_CPU_INDEX" "$torch_pin" ;; \
      cuda) pip install "$torch_pin" ;; \
      *) echo "DEVICE must be cpu or cuda, got $DEVICE" >&2; exit 1 ;; \
    esac; \
    pip install --require-hashes --no-deps -r requirements-runtime.lock; \
    useradd --system --uid 10001 --create-home --home-dir /home/gram --shell /usr/sbin/nologin gram

COPY tasks/ tasks/
COPY kernels/ kernels/
COPY model/ model/
COPY server/ server/
COPY gram_client/ gram_client/
COPY checkpoints/ checkpoints/

USER 10001
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRAM_PORT', '8000') + '/readyz', timeout=2)"]
CMD ["python", "-m", "server"]
