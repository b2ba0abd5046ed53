# Quick start: `make demo` and `make test`. Both create .venv on first use and install requirements.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint layout clean-runs

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m common.demo

test: $(STAMP)
	$(PY) -m pytest

# everything but the smoke/copy-out runs of train.sh (the slow part)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not smoke"

layout:
	$(PY) tests/test_layout.py .

clean-runs:
	rm -rf runs

# `make bench`: every method's bench against its peer (common/bench_all.py) -> bench/results.{json,md}.
# PYTHON given explicitly (PYTHON=python3 make bench) runs that interpreter and skips the venv;
# BENCH_ARGS passes options through, e.g. BENCH_ARGS="--size tiny --device cpu".
.PHONY: bench
ifeq ($(origin PYTHON),file)
bench: $(STAMP)
	$(PY) -m common.bench_all --out bench $(BENCH_ARGS)
else
bench:
	$(PYTHON) -m common.bench_all --out bench $(BENCH_ARGS)
endif
