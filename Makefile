# Two commands on a fresh machine (Python 3.11+, no Docker, no system PostgreSQL):
#   make demo   - venv, locked install, embedded PostgreSQL, migrate, seed, reconcile, reports
#   make test   - the same set-up, lint, then the whole test suite
# make airflow starts a local Airflow UI; make stop stops it and the embedded PostgreSQL;
# make bench prints reconcile figures; make lock re-resolves requirements.lock.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
DEMO_LEADS ?= 5000
PYTEST_ARGS ?=

.PHONY: install demo bench airflow test lint browser stop lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: install
	$(BIN)/cabinet-leads migrate
	$(BIN)/cabinet-leads seed --leads $(DEMO_LEADS) --seed 42
	@echo "== BEFORE: limbo distribution (runbook: Consultar Vista Limbo)"
	@$(BIN)/cabinet-leads limbo
	@echo "== BEFORE: weekly audit, last 4 weeks (runbook: Consultar Auditoría Semanal)"
	@$(BIN)/cabinet-leads audit --weeks 4
	@echo "== reconcile (runbook: run_reconcile, recent 30 days + limbo backlog)"
	@$(BIN)/cabinet-leads reconcile
	@echo "== AFTER: limbo distribution"
	@$(BIN)/cabinet-leads limbo
	@echo "== AFTER: weekly audit, last 4 weeks"
	@$(BIN)/cabinet-leads audit --weeks 4
	@echo "== funnel report (charts and tables in one self-contained HTML file), written to:"
	@$(BIN)/cabinet-leads report --html .local/report.html

bench: install
	$(BIN)/python bench/reconcile_bench.py --leads $(or $(LEADS),100000)

lint: install
	$(BIN)/ruff check . bin/airflow-local
	$(BIN)/sqlfluff lint include/sql

test: install lint browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Headless Chromium for the browser tests: Debian's package when we can install it (root + apt-get).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
	  || [ -d "/Applications/Google Chrome.app" ] \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: no Chromium found and cannot install it here: the browser tests will fail"

# A local Airflow UI for this project in the background (bin/airflow-local; AIRFLOW_PORT=8080).
airflow: install
	bin/airflow-local start

stop:
	@bin/airflow-local stop
	@if [ -x $(BIN)/cabinet-leads ]; then $(BIN)/cabinet-leads stop; else echo "nothing installed, nothing to stop"; fi

lock:
	@$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11 --no-header

clean: stop
	rm -rf $(VENV) .local .pytest_cache .ruff_cache .hypothesis
