# The two commands of the README: `make run` and `make test`.
# Both create .venv when missing and install the project into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test processes; they share one embedded server, each with its own database.
TEST_WORKERS ?= 2

.PHONY: run test coverage install lint format fuzz bench clean-db help

help:
	@echo "make run    start kuberca (web + worker) on PORT=$(PORT)"
	@echo "make test   run the whole test suite"
	@echo "make coverage  the whole suite with a coverage report (slower)"
	@echo "make lint   ruff check and format check"
	@echo "make fuzz   schemathesis on every API operation (FUZZ_MAX_EXAMPLES=100)"
	@echo "make bench  webhook ingestion benchmark (bench/ has the others)"
	@echo "make format ruff format and the fixes ruff check can make"
	@echo "make clean-db  delete the embedded database (KUBERCA_PGDATA, else var/pgdata)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	PORT=$(PORT) $(PY) manage.py serve --migrate --port $(PORT)

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Measuring coverage slows every test by about a third, so it has its own target.
coverage: install
	$(PY) -m pytest -n $(TEST_WORKERS) --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

fuzz: install
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-100} $(PY) -m pytest tests/reliability/test_schema_fuzz.py -m reliability $(PYTEST_ARGS)

bench: install
	$(PY) bench/ingest.py

# The folder settings.py uses: KUBERCA_PGDATA, else KUBERCA_VAR_DIR/pgdata.
PGDATA_DIR = $(or $(KUBERCA_PGDATA),$(or $(KUBERCA_VAR_DIR),var)/pgdata)

clean-db:
	@pid=$$(head -n 1 "$(PGDATA_DIR)/postmaster.pid" 2>/dev/null); \
	if [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null; then \
		echo "the embedded database in $(PGDATA_DIR) is running (pid $$pid); stop kuberca first" >&2; \
		exit 1; \
	fi
	rm -rf "$(PGDATA_DIR)"
