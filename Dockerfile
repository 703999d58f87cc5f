# Images of the production stack (docker-compose.yml).
#   app      web (gunicorn), Celery worker and beat, Flower: the Django site with a CPU-only torch
#   training the GPU training worker: the same code with PyPI's CUDA build of torch and DeepSpeed
#   serving  the GPU serving worker: the official vLLM image plus the site's worker code
# Build: docker compose build   (CODE_VERSION is written into every batch manifest)

# The vLLM release the serving image starts from (tests resolve the site's requirements beside it).
ARG VLLM_VERSION=0.33.0

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 rlhf \
    && mkdir -p /data/var /data/exports /data/checkpoints && chown -R rlhf /data
WORKDIR /app
ENV VAR_DIR=/data/var \
    EXPORT_ROOT=/data/exports \
    CHECKPOINT_ROOT=/data/checkpoints

FROM base AS app
COPY requirements.txt .
# The web side never trains: torch comes from PyTorch's CPU index (about 200 MB, not the
# multi-GB CUDA build PyPI serves for linux), at the version requirements.txt pins.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install -r requirements.txt
COPY --chown=rlhf . .
# Declared after the dependencies so a new commit does not rebuild them.
ARG CODE_VERSION=unknown
ENV CODE_VERSION=${CODE_VERSION}
RUN VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput --verbosity 0 && rm -rf /tmp/build-var
USER rlhf
EXPOSE 8000
CMD ["gunicorn", "annotation_site.wsgi:application"]

FROM base AS training
COPY requirements.txt requirements-gpu.txt ./
# PyPI's torch wheel for linux bundles the CUDA runtime; the host needs only the NVIDIA driver
# and the container toolkit. DeepSpeed (requirements-gpu.txt) runs ZeRO-2/3 with torch's own
# optimizers; its compiled ops (CPU offload, fused Adam) would need a CUDA devel base image.
RUN pip install -r requirements.txt \
    && pip install -r requirements-gpu.txt
COPY --chown=rlhf . .
# Declared after the dependencies so a new commit does not rebuild them.
ARG CODE_VERSION=unknown
ENV CODE_VERSION=${CODE_VERSION}
USER rlhf
CMD ["celery", "-A", "annotation_site", "worker", "--queues", "training", "--concurrency", "1", "--loglevel", "INFO"]

# A different base image, so the base stage's few lines are repeated (Dockerfiles have no include).
FROM vllm/vllm-openai:v${VLLM_VERSION} AS serving
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uid 1000 as in the other images where it is free (Ubuntu 24.04 bases give it to "ubuntu").
RUN (useradd --create-home --uid 1000 rlhf || useradd --create-home rlhf) \
    && mkdir -p /data/var /data/exports /data/checkpoints && chown -R rlhf /data
WORKDIR /app
ENV VAR_DIR=/data/var \
    EXPORT_ROOT=/data/exports \
    CHECKPOINT_ROOT=/data/checkpoints
COPY requirements.txt .
# The site's requirements beside vLLM's: every package the image has stays at its version (the
# image's own list is the constraint), and the torch pin, meant for the CPU machines, is left out
# because vLLM brings the torch it was built for. A conflict fails the build instead of breaking vLLM.
RUN python3 -m pip freeze | grep -E '^[A-Za-z0-9_.-]+==' > /tmp/vllm-image.txt \
    && grep -v '^torch==' requirements.txt > /tmp/requirements-serving.txt \
    && python3 -m pip install -c /tmp/vllm-image.txt -r /tmp/requirements-serving.txt
COPY --chown=rlhf . .
ARG CODE_VERSION=unknown
ENV CODE_VERSION=${CODE_VERSION}
USER rlhf
# The image's entry point is `vllm serve`; this image runs the platform's serving worker, which
# starts `vllm serve` itself for each deployment.
ENTRYPOINT []
CMD ["celery", "-A", "annotation_site", "worker", "--queues", "serving", "--concurrency", "1", "--loglevel", "INFO"]
