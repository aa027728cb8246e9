# `make test` works on a fresh machine: it creates .venv when no virtual environment is
# active, installs convprop with its test and dev extras, and runs the whole suite.
VENV ?= .venv
ifdef VIRTUAL_ENV
PYTHON := python
else
PYTHON := $(VENV)/bin/python
endif
STAMP := $(VENV)/.installed

.PHONY: install test lint bench size clean

$(STAMP): pyproject.toml
	@if [ -z "$(VIRTUAL_ENV)" ] && [ ! -x $(VENV)/bin/python ]; then python3 -m venv $(VENV); fi
	$(PYTHON) -m pip install -e ".[test,dev]"
	@mkdir -p $(VENV) && touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src tests benchmarks
	$(PYTHON) -m mypy

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_conv.py

size:
	@wc -l src/convprop/*.py src/convprop/*/*.py | sort -n | awk '{ flag = ($$1 > 300 && $$2 != "total") ? "  <- over 300 lines" : ""; print $$0 flag }'

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
