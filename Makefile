# CampusCard — every command a developer or CI needs. `make demo` and `make test` work on a
# fresh machine with Python 3.11: they install what is missing first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo serve test test-fast lint format i18n browsers citus bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browsers:
	scripts/install-debian.sh chromium chromium chromium-driver fonts-noto-cjk

demo: install
	$(BIN)/campuscard demo

serve: install
	$(BIN)/campuscard serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The message keys the templates and the code use, extracted by Babel (babel.cfg) into
# build/messages.pot for translators; the catalogs are src/campuscard/web/locale/*/LC_MESSAGES/
# messages.po, and tests/unit/test_web_i18n.py fails on a key used but missing from them.
i18n: install
	mkdir -p build
	$(BIN)/pybabel extract -F babel.cfg -k t -k tn:1 -k message --no-location --sort-output -o build/messages.pot .
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_web_i18n.py

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# Citus built from ../shared/vendor/citus/citus-*.tar.gz (or $$CAMPUSCARD_CITUS_TARBALL) against
# the wheel's PostgreSQL, cached in ~/.cache/campuscard/citus/ by Citus, PostgreSQL and compiler
# version. Built before the tests so it does not compete with them; without a tarball or a
# compiler it says how to get Citus and the tests marked citus skip (docs/scale-out.md).
citus: install
	$(BIN)/python -m tests.citus.build

# Three test processes on two cores: the tests spend most of their time waiting (browsers,
# servers, the job worker), so the suite used about a third of two cores with two processes.
test: install browsers lint citus
	$(BIN)/pytest -n 3 -q --dist loadgroup

test-fast: install
	$(BIN)/pytest -n 3 -q --dist loadgroup -m "not browser and not reliability"

# Payments over HTTP against pgbench on one embedded PostgreSQL (docs/performance.md); wrk,
# the load generator, comes from Debian. Prints a summary and, last, one JSON line.
bench: install
	scripts/install-debian.sh wrk wrk
	$(BIN)/python -m bench.payments

clean:
	rm -rf $(VENV) .campuscard .pytest_cache .mypy_cache .ruff_cache test-artifacts
