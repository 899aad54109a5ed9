# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.local-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local]"
	touch $@

# the tests include a smoke run of the benchmarks, so they install the bench extra too
$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,dev,bench]"
	touch $@ $(VENV)/.local-installed $(VENV)/.bench-installed

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[local,bench]"
	touch $@ $(VENV)/.local-installed

demo: $(VENV)/.local-installed
	$(PY) examples/transcribe_file.py

test: $(VENV)/.dev-installed
	$(PY) -m pytest -q

# Side by side with livekit-plugins-openai; writes BENCHMARKS.md (a few minutes).
bench: $(VENV)/.bench-installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache
