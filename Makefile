# Dataflow — the two commands for a fresh machine are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo

.PHONY: run test check bench reliability setup clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

setup: $(STAMP)

## make run: set up and run the whole pipeline on the embedded default (simulator, local warehouse)
run: $(STAMP)
	@test -f $(DEMO)/dataflow.yaml || $(BIN)/dataflow init $(DEMO)
	$(BIN)/dataflow run --project $(DEMO)

## make test: set up and run the whole test suite (with the `spark` extra: the Spark engine's tests)
test: $(STAMP) system-deps
	$(BIN)/pip install --quiet -e '.[dev,postgres,spark]'
	$(BIN)/pytest -q

## system-deps: Debian packages the tests use (PostgreSQL server, Chromium for the browser tests,
## Java 17 and the JDBC drivers of the Spark engine)
system-deps:
	@bash scripts/system-deps.sh

## make check: ruff lint + format check, mypy strict on the package
check: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,postgres,spark]'  # mypy reads pyspark's types
	$(BIN)/ruff check dataflow tests bench
	$(BIN)/ruff format --check dataflow tests bench
	$(BIN)/mypy

## make bench: benchmarks, printed as JSON (figures recorded in docs/benchmarks.md); installs the
## peers they compare against (the `bench` extra) first
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,postgres,bench]'
	$(BIN)/python bench/run.py

## make reliability: the whole crash, concurrency and fault campaign (>= 50 kill -9, every crash
## point, every fault profile; `make test` runs a quick subset); prints the figures that
## docs/reliability.md records, from reliability-report.jsonl
reliability: $(STAMP)
	rm -f reliability-report.jsonl
	DATAFLOW_RELIABILITY=full DATAFLOW_RELIABILITY_REPORT=$(CURDIR)/reliability-report.jsonl \
		DATAFLOW_FUZZ_PAYLOADS=10000 DATAFLOW_FUZZ_BIG_MB=50 \
		$(BIN)/pytest -q -m reliability tests/reliability -p no:cacheprovider
	$(BIN)/python tests/reliability/summarize.py reliability-report.jsonl

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache reliability-report.jsonl
