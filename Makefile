# The README's two commands (`make run`, `make test`) and the development targets.
# Needs only Python >= 3.11 (with venv) and git; PostgreSQL is optional locally.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
BENCHES := $(sort $(filter-out bench/_%,$(wildcard bench/*.py)))

.PHONY: venv run test test-sqlite test-postgres lint format bench docs messages

## venv: the virtual environment, with Balsam installed editable plus test tools
venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  echo "error: '$(PYTHON) -m venv' is unavailable; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

## run: start Balsam on http://localhost:8080, each workspace on http://<id>.localhost:8081 (data in .balsam/)
run: venv
	$(BIN)/balsam up

## test: the whole suite on SQLite, then what touches the database again on a private PostgreSQL
test: test-sqlite test-postgres

test-sqlite: venv
	$(BIN)/pytest

# The PostgreSQL pass runs what touches the database: providers, embedded servers,
# live workspaces (JupyterLab, Chromium, attacks from a kernel), the portal's browser
# test and the port take-back keep no state of their own there, and the SQLite pass
# has already run them.
PG_SKIP := --ignore=tests/embedded --ignore=tests/providers --ignore=tests/web/workspaces \
	--ignore=tests/web/pages/test_browser_projects.py --ignore=tests/test_ports.py \
	--ignore=tests/cli/test_port_squatters.py --ignore=tests/cli/test_workspace_origin.py

test-postgres: venv
ifneq ($(PG_INITDB),)
	BALSAM_TEST_DATABASE=postgres $(BIN)/pytest $(PG_SKIP)
else
	@if [ "$${CI:-}" = "true" ]; then \
	  echo "error: PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are missing;" \
	       "CI must run the PostgreSQL pass (apt-get install postgresql)" >&2; \
	  exit 1; fi
	@echo "SKIPPED the PostgreSQL pass: no /usr/lib/postgresql/*/bin/initdb" \
	      "(on Debian/Ubuntu: apt-get install postgresql)."
endif

## lint: ruff (check and format) and mypy (strict); all run, so one report shows every problem
lint: venv
	@status=0; \
	echo "$(BIN)/ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "$(BIN)/ruff format --check ."; $(BIN)/ruff format --check . || status=1; \
	echo "$(BIN)/mypy"; $(BIN)/mypy || status=1; \
	exit $$status

## format: format every Python file with ruff (what `make lint` checks)
format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: every bench/*.py script, one after the other
bench: venv
	@$(if $(BENCHES),,echo "no benchmarks in bench/")
	@set -e; for script in $(BENCHES); do echo "== $$script"; $(BIN)/python $$script; done

## docs: regenerate docs/settings.md from the settings
docs: venv
	$(BIN)/balsam settings --format markdown > docs/settings.md

## messages: extract the portal's strings and update the Swedish and English catalogs
messages: venv
	@mkdir -p build
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output -o build/messages.pot .
	$(BIN)/pybabel update -i build/messages.pot -d src/balsam/locale --no-fuzzy-matching
