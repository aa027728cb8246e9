# `make test` works on a fresh machine: it creates .venv when no virtual environment is
# active, installs convprop with its test and dev extras, and runs the whole suite.
VENV ?= .venv
ifdef VIRTUAL_ENV
PYTHON := python
VENV_BIN :=
else
PYTHON := $(VENV)/bin/python
VENV_BIN := $(VENV)/bin/
endif
STAMP := $(VENV)/.installed-test
CORE_STAMP := $(VENV)/.installed-core

.PHONY: install train test test-gpu lint gradcheck bench bench-train docs size clean browser

$(VENV)/bin/python:
	@if [ -z "$(VIRTUAL_ENV)" ]; then python3 -m venv $(VENV); fi

# the library alone (what `make train` needs)
$(CORE_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PYTHON) -m pip install -e .
	@mkdir -p $(VENV) && touch $(CORE_STAMP)

# + tests (pytest, hypothesis, torch==2.13.0 CPU as an oracle), linters, and MPI (mpi4py,
# Open MPI's mpiexec) for the data-parallel tests
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PYTHON) -m pip install -e ".[test,dev,mpi]"
	@mkdir -p $(VENV) && touch $(STAMP) $(CORE_STAMP)

install: $(STAMP)

# The main job: train the default LeNet-style net on the embedded digits, with a progress
# bar; writes the model, a checkpoint, the plots and report.html to runs/digits/ (replacing
# the previous run there: the main job can be run again).
train: $(CORE_STAMP)
	$(VENV_BIN)convprop train --dataset digits --out runs/digits --overwrite

# Debian's chromium and chromedriver for the page tests (tests/*/test_*_browser.py), installed
# where chromedriver is missing and apt-get exists (as root, else with sudo where there is one)
browser:
	@if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
		else echo "chromedriver missing: as root, apt-get install chromium chromium-driver"; exit 0; fi; \
		$$SUDO apt-get update && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

test: $(STAMP) browser
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup

# the CuPy half of the suite (needs an NVIDIA GPU and convprop[gpu])
test-gpu: $(STAMP)
	$(PYTHON) -m pytest -q -m gpu

gradcheck: $(CORE_STAMP)
	$(VENV_BIN)convprop gradcheck
	$(VENV_BIN)convprop gradcheck --model resnet-mini

# docstring examples and the equation labels the code cites (docs/derivations.md)
docs: $(STAMP)
	$(PYTHON) -m pytest -q --doctest-modules src/convprop tests/docs/test_docs_labels.py

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks tools
	$(PYTHON) -m ruff format --check src tests benchmarks tools
	$(PYTHON) -m mypy

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_conv.py

bench-train: $(STAMP)
	$(PYTHON) benchmarks/bench_train.py

# line counts of every source file (Python, Cython, C, JavaScript/CSS/HTML, shell), per file
# and per language; op modules over 300 lines and any file over 600 are flagged (exit 0)
size:
	@python3 tools/size.py .

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
