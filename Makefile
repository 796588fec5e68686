# Quick start: `make demo` (whole pipeline on the synthetic minivox corpus) and `make test`.
# Both create .venv on first use (python3 -m venv + pip) and install the package editable with its extras.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all librimini librimini-table bench clean-demo help

help:
	@echo "make demo       run the minivox recipe end to end and print its results table"
	@echo "make test       run the test suite (slow tests excluded)"
	@echo "make test-all   run every test, slow ones included"
	@echo "make librimini  train and evaluate on the real-speech librimini corpus"
	@echo "make librimini-table  every librimini system x 3 seeds: mean ± sd table (hours on 2 cores)"
	@echo "make bench      run the memory benchmark"

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the wheel available here first, so that the resolver does not pull another build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchaudio==2.11.*"
	$(PY) -m pip install --quiet -e ".[dev,demo]"
	touch $(STAMP)

demo: $(STAMP)
	PYTHON=$(abspath $(PY)) bash recipes/minivox/run.sh

librimini: $(STAMP)
	PYTHON=$(abspath $(PY)) bash recipes/librimini/run.sh

librimini-table: $(STAMP)
	PYTHON=$(abspath $(PY)) bash recipes/librimini/table.sh

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" -q -ra

test-all: $(STAMP)
	$(PY) -m pytest -q -ra

bench: $(STAMP)
	$(PY) scripts/benchmark_memory.py

clean-demo:
	rm -rf data/minivox exp/minivox
