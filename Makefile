# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test lint bench live clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,demo]"
	touch $@

# the tests run the demo clip and a smoke run of the benchmarks, so they install those too
$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,demo,bench,dev]"
	touch $@ $(VENV)/.demo-installed $(VENV)/.bench-installed

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,demo,bench]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(PY) examples/transcribe_file.py

# lint and types first (seconds), then every test
test: $(VENV)/.dev-installed lint
	$(PY) -m pytest -q

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict plugin/livekit/plugins/openai_stt/protocol

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
