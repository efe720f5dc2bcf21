# skmach: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.skmach-installed

.PHONY: demo test install docs bench bench-install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Train MACHClassifier on the embedded demo data set beside one-vs-rest.
demo: $(STAMP)
	$(PY) -m skmach demo

## Install and run the test suite (CI runs this).
test: $(STAMP)
	$(PY) -m pytest -q

## Build the documentation site (warnings are errors).
docs: $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

## Optional peers for the benchmarks (napkinXC, Omikuji, PECOS: several GB).
bench-install: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build docs/auto_examples docs/generated
