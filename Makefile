# Two commands on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per Python version: `make test PYTHON=python3.13` rebuilds the venv on that interpreter.
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)

.PHONY: up test venv typecheck validate bench clean browser

$(STAMP): pyproject.toml
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYTHON_VERSION)" ]; then \
	  echo "rebuilding $(VENV) on Python $(PYTHON_VERSION)"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	$(BIN)/carepath up

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The preview and console tests render pages in headless Chromium (Playwright drives Debian's
# chromium; never `playwright install`), the console in Chinese too, hence the CJK fonts. CI (root,
# CI=true) installs both once; elsewhere the tests skip and say how to install them. Never fails the build.
browser:
	@if { [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/noto ]; } && [ "$$CI" = true ] && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and fonts-noto-cjk for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
	    || echo "chromium could not be installed: the browser tests will skip"; \
	fi

typecheck: $(STAMP)
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/carepath validate pathways/*.yaml

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) var .pytest_cache
