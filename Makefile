# skmach: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.skmach-installed

.PHONY: demo test install docs bench bench-install wheel-test clean

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

## Build the sdist and, from it, the wheel; install the wheel (not editable, no
## test extras) into a fresh venv and use it from outside the source tree (CI).
WHEEL_VENV ?= build/wheel-venv
wheel-test: $(STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(PY) -m build --outdir dist .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q dist/skmach-*.whl
	cd "$$(mktemp -d)" && $(CURDIR)/$(WHEEL_VENV)/bin/skmach demo && \
		$(CURDIR)/$(WHEEL_VENV)/bin/python $(CURDIR)/tests/wheel_smoke.py $(CURDIR)

## Build the documentation site (warnings are errors).
docs: $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

## Optional peers for the benchmarks (napkinXC, Omikuji, PECOS: several GB), in
## their own venv: libpecos pins NumPy < 2 and SciPy < 1.14, which would
## break CuPy and the test environment in .venv.
BENCH_VENV ?= .venv-bench
bench-install:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e ".[bench]"

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build docs/auto_examples docs/generated
