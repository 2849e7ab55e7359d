# maskroom: `make run` to use it on this machine, `make test` to check all of it.
# Both install what they need (virtualenv, Python packages, Debian packages).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --progress-bar off

# `make run` settings; each can also come from the environment. DEBUG=true
# is for development (Django's debug pages); HTTPS=true behind a TLS proxy.
PORT ?= 8000
HOST ?= 127.0.0.1
MASKROOM_HOME ?= $(CURDIR)/.maskroom
DEBUG ?= false
HTTPS ?= false
RUN_ENV = MASKROOM_HOME="$(MASKROOM_HOME)" PORT="$(PORT)" HOST="$(HOST)" DEBUG="$(DEBUG)" HTTPS="$(HTTPS)"

MYPY_PATHS ?= backend worker tests scripts
PYTEST_ARGS ?=

.PHONY: help run test lint bench clean distclean chromium

help:
	@echo "make run     install, migrate, seed the demo project, serve on http://$(HOST):$(PORT)/"
	@echo "             (PORT, HOST, DEBUG, HTTPS and MASKROOM_HOME=$(MASKROOM_HOME) can be set)"
	@echo "make test    install, start throwaway PostgreSQL and Redis, run ruff, import-linter, mypy and pytest"
	@echo "make lint    ruff, import-linter (layers, no cycles) and mypy only"
	@echo "make bench   the benchmarks in bench/"
	@echo "make clean   remove caches and collected static files (keeps MASKROOM_HOME and .venv)"
	@echo "make distclean   clean, and remove the virtualenv"

run: $(VENV)/.stamp-run
	$(RUN_ENV) $(PY) scripts/secret_key.py
	$(RUN_ENV) $(PY) manage.py prepare_home
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	$(RUN_ENV) $(PY) manage.py seed_demo
	$(RUN_ENV) exec $(PY) manage.py serve

test: $(VENV)/.stamp-dev chromium
	MYPY_PATHS="$(MYPY_PATHS)" scripts/test.sh $(PYTEST_ARGS)

lint: $(VENV)/.stamp-dev
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy $(MYPY_PATHS)

bench: $(VENV)/.stamp-dev
	@if [ -d bench ]; then $(PY) -m bench; else echo "make bench: no bench/ yet"; fi

# The browser tests drive Debian's Chromium.
chromium:
	@test -x /usr/bin/chromium || scripts/apt-install.sh chromium

clean:
	rm -rf staticfiles .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Debian's own python3 needs python3-venv for `-m venv`.
$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && scripts/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }

# Stamps: reinstall only when a requirements file changed.
$(VENV)/.stamp-run: requirements.txt | $(PY)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.stamp-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) -r requirements-dev.txt
	touch $@ $(VENV)/.stamp-run
