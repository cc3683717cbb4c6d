# The two commands of the README: `make serve` and `make test`. Everything else is set-up they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup serve test tools clean web

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

# External tools the tests drive (Debian packages); installed when we are root with apt, else the
# tests that need them skip (and fail instead under SUITE_REQUIRE_ALL=1, as in CI).
tools:
	@bash scripts/install-test-tools.sh

# pytest's exit 5 ("no tests collected") must not pass as green.
test: setup tools
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache web/dist web/node_modules
