# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test test-peers lint bench live clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,demo]"
	touch $@

# the tests run the demo clip and a smoke run of the benchmarks, so they install those too
$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,demo,bench,dev,peers]"
	touch $@ $(VENV)/.demo-installed $(VENV)/.bench-installed

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,demo,bench]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(PY) examples/transcribe_file.py

# lint and types first (seconds), then every test on 4 workers, a file per worker at a time
# (most tests wait on sockets, so 4 beat 2 on a 2-core machine; module fixtures run once)
PYTEST_WORKERS ?= 4
test: $(VENV)/.dev-installed lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# The real peers (tests/peers), LiteLLM's proxy required: `make test` runs the openai SDK and
# livekit-plugins-openai peers and skips LiteLLM (with a reason) until this has installed it.
# LiteLLM runs from a venv of its own (litellm[proxy] pins websockets<16, the plugin's venv has
# 17): about 760 MB, a minute to install cold, once per machine.
LITELLM_VERSION := 1.108.7
LITELLM_VENV    := $(VENV)/litellm

$(LITELLM_VENV)/.installed-$(LITELLM_VERSION): | $(VENV)/bin/python
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/pip install --quiet "litellm[proxy]==$(LITELLM_VERSION)"
	touch $@

test-peers: $(VENV)/.dev-installed $(LITELLM_VENV)/.installed-$(LITELLM_VERSION)
	OPENAI_STT_PEERS=required $(PY) -m pytest -q -m peers tests/peers

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Side by side with livekit-plugins-openai; writes BENCHMARKS.md (a few minutes).
bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks

# With OPENAI_API_KEY: asks the real Realtime API which session fields each transcription model
# accepts, transcribes 6.4 s once per model (under $0.01), rewrites docs/openai-contract.md.
# Without a key it says it skipped and changes nothing.
live: $(VENV)/.demo-installed
	$(PY) -m tools.contract_probe --out docs/openai-contract.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
