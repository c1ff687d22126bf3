# Two commands matter: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format typecheck bench clean authzen-example

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tessera needs Python 3.11 or later"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tessera serve

# The AuthZEN certification fixture (examples/authzen-certification) on the default port, in its
# own data directory, with TESSERA_AUTHZEN_ALLOW_ANONYMOUS on: for certification runs only.
AUTHZEN_HOME ?= .tessera-authzen
authzen-example: $(STAMP)
	TESSERA_HOME=$(AUTHZEN_HOME) TESSERA_POLICY_BUNDLE=examples/authzen-certification \
	TESSERA_AUTHZEN_ALLOW_ANONYMOUS=true $(BIN)/tessera serve

# Tests run on as many workers as there are cores (pytest-xdist); each worker makes its own
# PostgreSQL database. TEST_ARGS passes extra arguments, e.g. TEST_ARGS="-k dpop -n 0".
TEST_ARGS ?=
test: $(STAMP)
	$(BIN)/python -m pytest -n auto $(TEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	status=0; \
	$(BIN)/python bench/tokens.py $(BENCH_ARGS) || status=1; \
	$(BIN)/python bench/pdp.py $(BENCH_ARGS) || status=1; \
	$(BIN)/python bench/audit.py $(BENCH_ARGS) || status=1; \
	$(BIN)/python bench/exchange.py || status=1; \
	$(BIN)/python bench/jwt_bearer.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
