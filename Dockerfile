# Images of the production stack (docker-compose.yml).
#   app      web (gunicorn), Celery worker and beat: the Django site with a CPU-only torch
#   training the GPU training worker: the same code with PyPI's CUDA build of torch
# Build: docker compose build   (CODE_VERSION is written into every batch manifest)

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
COPY requirements.txt .
# PyPI's torch wheel for linux bundles the CUDA runtime; the host needs only the NVIDIA driver
# and the container toolkit.
RUN pip install -r requirements.txt
COPY --chown=rlhf . .
# Declared after the dependencies so a new commit does not rebuild them.
ARG CODE_VERSION=unknown
ENV CODE_VERSION=${CODE_VERSION}
USER rlhf
CMD ["celery", "-A", "annotation_site", "worker", "--queues", "training", "--concurrency", "1", "--loglevel", "INFO"]
