# Two entry points for a fresh machine (see README):
#   make demo   set up .venv, then JupyterLab with the extension and the simulated feed
#   make test   set up .venv, then lint, type-check, schema check and every test
VENV ?= .venv
PY := $(VENV)/bin/python
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
PORT ?= 8888

.PHONY: setup demo test test-repeat lint typecheck schema pytest bench clean \
	labextension lab-check browser redis uitest bench-browser chaos
NPM_STAMP := labextension/node_modules/.package-lock.json

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lab]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) --no-browser --port=$(PORT) --notebook-dir=notebooks

lint: setup
	$(VENV)/bin/ruff check jupyter_rtstream tests
	$(VENV)/bin/ruff format --check jupyter_rtstream tests

typecheck: setup
	$(VENV)/bin/mypy

schema: setup
	$(PY) -m jupyter_rtstream.schema --check

# configurable-http-proxy for the JupyterHub end-to-end test (tests/hub), from its lockfile.
HUB_PROXY_STAMP := tests/hub/node_modules/.package-lock.json
$(HUB_PROXY_STAMP): tests/hub/package-lock.json
	cd tests/hub && npm ci --no-audit --no-fund
	touch $@

# Debian's redis-server for the shared-feed tests (tests/bus start their own on a free port):
# installed here when missing and we are root, as on CI.
redis:
	@if ! command -v redis-server >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq redis-server; \
		else \
			echo "The shared-feed tests need redis-server: apt-get install redis-server" >&2; \
			exit 1; \
		fi; \
	fi

# The Node.js `ws` peer of the benchmark (jupyter_rtstream/bench/nodews), from its lockfile;
# the benchmark also runs this itself when node_modules is missing or older than the lock.
NODEWS_DIR := jupyter_rtstream/bench/nodews
NODEWS_STAMP := $(NODEWS_DIR)/node_modules/.package-lock.json
$(NODEWS_STAMP): $(NODEWS_DIR)/package-lock.json
	cd $(NODEWS_DIR) && npm ci --no-audit --no-fund
	touch $@

pytest: setup redis $(HUB_PROXY_STAMP) $(NODEWS_STAMP)
	$(PY) -m pytest --ignore=tests/ui
	$(PY) -m pytest --nbval notebooks -p jupyter_rtstream.testing --rtstream-server

# The JupyterLab extension: node deps from the committed lockfile, then the build into
# jupyter_rtstream/labextension (pip install / make setup build it too, via hatch).
$(NPM_STAMP): labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund
	touch $@

labextension: setup $(NPM_STAMP)
	cd labextension && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build

# Generated types/validators up to date, eslint + prettier, tsc --noEmit, vitest.
lab-check: $(NPM_STAMP)
	cd labextension && npm run check

# Debian's Chromium for the browser tests: installed here when missing and we are root
# (as on CI); Playwright never downloads a browser of its own.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq chromium; \
		else \
			echo "The browser tests need Chromium at $(CHROMIUM): apt-get install chromium" >&2; \
			exit 1; \
		fi; \
	fi

# Real-browser tests: jupyter lab + Debian's Chromium.
uitest: labextension browser
	$(PY) -m pytest tests/ui

bench-browser: labextension browser
	$(PY) -m jupyter_rtstream.bench.browser --tick-rate 10 --tick-rate 200

test: lint typecheck schema lab-check pytest uitest

# The suite N times in a row (HOG=1: with a busy loop on every core beside it).
N ?= 5
HOG ?= 0
test-repeat: labextension
	N=$(N) HOG=$(HOG) PY=$(PY) bash .ci/repeat

bench: setup $(NODEWS_STAMP)
	$(PY) -m jupyter_rtstream.bench --quick --systems rtstream,baseline,websockets,nodews \
		--json bench-quick.json

# The fault suite of docs/reliability.md, full sizes (about an hour on 2 cores; the soak
# alone is 30 min: CHAOS_ARGS="--only kill9,frozen" or "--duration 600" to shorten).
# Exits non-zero when a goal is missed. Its fast subset runs in `make test` (tests/chaos).
CHAOS_ARGS ?=
chaos: setup browser
	$(PY) -m jupyter_rtstream.chaos --json chaos.json --table chaos-table.md $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .test-repeat \
		labextension/node_modules labextension/lib jupyter_rtstream/labextension \
		tests/hub/node_modules $(NODEWS_DIR)/node_modules
