# Server Scout: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

# Replicas per service for `make run`, e.g. `make run GATEWAYS=3 INGEST=2`.
GATEWAYS ?= 1
AUTH ?= 1
KEYS ?= 1
INGEST ?= 1
# The first gateway's HTTPS port (default: the last run's, else 8443; 0: any free port).
HTTPS_PORT ?=

.PHONY: help venv run test lint fmt proto bench failover clean

help:
	@echo "make run    start the whole system locally (GATEWAYS=n AUTH=n KEYS=n INGEST=n HTTPS_PORT=p)"
	@echo "make test   run the whole test suite against real PostgreSQL and Redis"
	@echo "make lint   ruff and mypy"
	@echo "make bench  benchmarks, reported as ratios against a baseline from the same run"
	@echo "make failover  Redis and PostgreSQL failover under load on loopback: recovery times and counts"
	@echo "make proto  regenerate the gRPC contracts in scout/ from protos/"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required (set PYTHON=...)" or 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: venv
	$(BIN)/python -m devstack --gateways $(GATEWAYS) --auth $(AUTH) --keys $(KEYS) --ingest $(INGEST) \
		$(if $(HTTPS_PORT),--https-port $(HTTPS_PORT))

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

proto: venv
	$(BIN)/python scripts/gen_protos.py

bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

failover: venv
	$(BIN)/python -m pytest -q -s tests/gateway/test_redis_failover.py \
		tests/gateway/test_postgres_failover.py -k under_load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
