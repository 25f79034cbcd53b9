# The two commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
OPSPORTAL_PORT ?= 8000
export HOST OPSPORTAL_PORT

.PHONY: run test install install-dev lint format bench bench-alerts bench-runbooks bench-storm bench-memory clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ops Portal needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# A random key made once for the embedded setup; production sets SECRET_KEY itself.
var/secret_key:
	@mkdir -p var && umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

run: $(VENV)/.installed var/secret_key
	@export SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" DEBUG="$${DEBUG:-true}" PATH="$(CURDIR)/$(BIN):$$PATH"; \
	set -e; \
	python manage.py migrate --no-input; \
	python manage.py ensure_admin; \
	python manage.py load_demo; \
	echo; echo "Ops Portal: http://$(HOST):$(OPSPORTAL_PORT)/  (web + Celery worker + beat; Ctrl-C stops all)"; echo; \
	rm -rf var/prometheus && mkdir -p var/prometheus; \
	export PROMETHEUS_MULTIPROC_DIR="$(CURDIR)/var/prometheus" METRICS_ENABLED="$${METRICS_ENABLED:-true}"; \
	exec honcho start -f Procfile

test: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/incidents.py

# Needs DATABASE_URL (PostgreSQL) and REDIS_URL: the intake under gunicorn with a Celery worker.
bench-alerts: $(VENV)/.installed-dev
	$(BIN)/python bench/alert_intake.py

# Needs REDIS_URL (and DATABASE_URL for PostgreSQL): runbook runs through a real worker.
bench-runbooks: $(VENV)/.installed-dev
	$(BIN)/python bench/runbook_runs.py

# Needs DATABASE_URL (PostgreSQL) and REDIS_URL: alert storms to first looks done (BENCH_ARGS="--quick").
bench-storm: $(VENV)/.installed-dev
	$(BIN)/python bench/first_look_storm.py $(BENCH_ARGS)

# Needs DATABASE_URL (PostgreSQL) and REDIS_URL: RSS of web and worker processes across 10 000 requests.
bench-memory: $(VENV)/.installed-dev
	$(BIN)/python bench/memory.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
