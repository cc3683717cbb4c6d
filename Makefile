# The two commands of the README: `make serve` and `make test`. Everything else is set-up they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup serve test test-env tools services lint clean web

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed web

# The browser app: web/build.sh (Debian nodejs/npm when missing, npm ci, esbuild into web/dist), only
# when its sources changed.
web: web/dist/index.html
web/dist/index.html: web/package.json $(wildcard web/package-lock.json) web/build.mjs web/build.sh web/index.html web/share.html \
		$(shell find web/src -type f 2>/dev/null)
	@bash web/build.sh

# Initialise the data dir (./data unless SUITE_DATA_DIR is set) and run every service.
serve: setup
	$(VENV)/bin/suite init
	exec $(VENV)/bin/suite serve

# External tools the tests drive (Debian packages, with what each needs to work), checked after install.
tools:
	@bash scripts/install-test-tools.sh

# PostgreSQL, Redis and Ceph RGW (S3) on loopback; each returns at once when already up.
services:
	@bash scripts/start-test-services.sh

# As root (CI, a fresh machine): install the tools and start the services. Otherwise use what is there;
# tests that need something missing skip (and fail instead under SUITE_REQUIRE_ALL=1, as in CI).
test-env: setup
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install-test-tools.sh && bash scripts/start-test-services.sh; \
	else echo "make test: not root, using the tools and services already installed" >&2; fi

# ruff (lint + format) on everything, mypy on suite/ (configured in pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check suite tests bench
	$(VENV)/bin/ruff format --check suite tests bench
	$(VENV)/bin/mypy

# pytest in parallel (pytest-xdist): one worker per core, at most 4 (PYTEST_WORKERS=0 runs serially), and
# --dist loadfile keeps every test file on one worker, so its module-scoped servers start once; files that
# share a fixed resource are one unit (tests/conftest.py XDIST_GROUPS).
# pytest's exit 5 ("no tests collected") must not pass as green.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST_XDIST ?= -n $(PYTEST_WORKERS) --dist loadfile
test: setup test-env lint
	@$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache web/dist web/node_modules
