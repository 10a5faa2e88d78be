# posthouse: `make run` starts the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8025

# The embedded default: a SQLite file and a maildir under ./var, no DNS records needed.
run: export POSTHOUSE_REQUIRE_VERIFIED_DOMAINS ?= false

.PHONY: install run test lint typecheck format api worker migrate revision bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	mkdir -p var
	$(BIN)/posthouse migrate
	$(BIN)/posthouse demo --url http://$(HOST):$(PORT)
	$(BIN)/posthouse serve --host $(HOST) --port $(PORT)

# The Node client libraries the seed documents' examples use (tests/package.json), when
# npm is here: the tests that need them skip, saying so, when they are not installed.
NODE_STAMP := tests/node_modules/.package-lock.json
$(NODE_STAMP): tests/package.json tests/package-lock.json
	if command -v npm >/dev/null; then npm ci --prefix tests --no-audit --no-fund; fi

test: install $(NODE_STAMP)
	$(BIN)/pytest -n auto --dist loadfile -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench

# mypy on src/ (configured in pyproject.toml: strict where the pipeline's seams are).
typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests migrations bench
	$(BIN)/ruff format src tests migrations bench

api: install
	$(BIN)/posthouse api --host $(HOST) --port $(PORT)

worker: install
	$(BIN)/posthouse worker

migrate: install
	$(BIN)/posthouse migrate

revision: install
	$(BIN)/alembic revision --autogenerate -m "$(MESSAGE)"

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
