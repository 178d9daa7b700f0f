# The README's two commands (`make run`, `make test`) and the development targets.
# Needs only Python >= 3.11 (with venv) and git; PostgreSQL is optional locally.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
BENCHES := $(sort $(filter-out bench/_%,$(wildcard bench/*.py)))
OIDC_DIR := tests/fixtures/oidc_provider
OIDC_STAMP := $(OIDC_DIR)/node_modules/.installed

.PHONY: venv system-packages oidc-provider run test test-sqlite test-postgres lint format bench docs messages

## venv: the virtual environment, with Balsam installed editable plus test tools
venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  echo "error: '$(PYTHON) -m venv' is unavailable; on Debian/Ubuntu: apt-get install python3-venv" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

## system-packages: the Debian packages the workspace templates need (R for the R and
## Elyra templates): installed when run as root, otherwise named (a workspace of a
## template whose packages are missing fails with their names)
TEMPLATES_FILE := $(or $(BALSAM_WORKSPACES__TEMPLATES_FILE),src/balsam/data/workspace_templates.json)
system-packages:
	@command -v dpkg-query >/dev/null || { echo "system-packages: no dpkg here; install what $(TEMPLATES_FILE) names under systemPackages yourself"; exit 0; }; \
	wanted=$$($(PYTHON) -c 'import json, sys; print(" ".join(sorted({p for t in json.load(open(sys.argv[1])) for p in t.get("systemPackages", [])})))' $(TEMPLATES_FILE)) || exit 1; \
	missing=$$(for p in $$wanted; do dpkg-query -W -f '$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done | tr '\n' ' '); \
	[ -n "$${missing% }" ] || exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "Installing the workspace templates' system packages (R and R packages; a few minutes): $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	else \
	  echo "warning: R workspaces (templates r, elyra) will not start until an administrator runs:"; \
	  echo "  sudo apt-get install --no-install-recommends $$missing"; \
	fi

## oidc-provider: the test OpenID Provider's npm packages (npm ci in tests/fixtures/oidc_provider,
## when node_modules is missing or older than package-lock.json); without npm the OpenID
## Connect tests are skipped, except in CI (CI=true), where this fails
oidc-provider:
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$${CI:-}" = "true" ]; then \
	    echo "error: npm is missing; CI must install Node.js >= 20 with npm for the OpenID Connect tests ($(OIDC_DIR))" >&2; \
	    exit 1; fi; \
	  echo "warning: npm is missing: the OpenID Connect tests will be skipped (install Node.js >= 20 with npm)"; \
	elif [ ! -f $(OIDC_STAMP) ] || [ $(OIDC_DIR)/package-lock.json -nt $(OIDC_STAMP) ] \
	     || [ $(OIDC_DIR)/package.json -nt $(OIDC_STAMP) ]; then \
	  echo "Installing the test OpenID Provider: npm ci in $(OIDC_DIR)"; \
	  (cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error >/dev/null) && touch $(OIDC_STAMP); \
	fi

## run: start Balsam on http://localhost:8080, each workspace on http://<id>.localhost:8081 (data in .balsam/)
run: venv system-packages
	$(BIN)/balsam up

## test: the whole suite on SQLite, then what touches the database again on a private PostgreSQL
test: test-sqlite test-postgres

test-sqlite: venv system-packages oidc-provider
	$(BIN)/pytest

# The PostgreSQL pass runs what touches the database: providers, embedded servers,
# live workspaces (JupyterLab, Chromium, attacks from a kernel), the portal's browser
# tests, the port take-back, the OpenID Provider harness, the portal's and the CLI's
# runs (the same services as tests/web/runs, which runs here), weed orphans, restarts in
# place and the uids of two installations keep no state of their own there, and the
# SQLite pass has already run them.
PG_SKIP := --ignore=tests/embedded --ignore=tests/providers --ignore=tests/web/workspaces \
	--ignore=tests/web/pages/test_browser_projects.py --ignore=tests/web/pages/test_browser_data.py \
	--ignore=tests/test_ports.py --ignore=tests/test_oidc_harness.py \
	--ignore=tests/cli/test_port_squatters.py --ignore=tests/cli/test_workspace_origin.py \
	--ignore=tests/web/pages/test_run_pages.py --ignore=tests/cli/test_run_cli.py \
	--ignore=tests/cli/test_up_orphans.py \
	--ignore=tests/cli/test_restart.py --ignore=tests/cli/test_two_installations.py

test-postgres: venv oidc-provider
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
