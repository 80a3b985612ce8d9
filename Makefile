# Two commands do everything on a fresh machine (Python 3.11+, Java 17+, Maven, make):
#   make run   - the embedded default: Kafka broker, worker, api with in-process sink
#   make test  - the whole suite on the real broker and the real ClickHouse engine
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-containers bench lock kafka-fetch browser dashboard csharp clean

install: $(STAMP)

# Dependencies come from the lock file only (hashes checked); the project itself
# is installed editable on top without resolving anything again.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

kafka-fetch: install
	$(BIN)/sophra kafka fetch

# Browser tests drive Debian's Chromium with playwright-core (locked in tests/browser);
# no browser is downloaded.
browser: tests/browser/node_modules/.installed
tests/browser/node_modules/.installed: tests/browser/package-lock.json
	sh deploy/install_debian_package.sh /usr/bin/chromium chromium
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $@

# The dashboard's packages (uPlot) from its lock file; the api serves them with
# dashboard/src, so there is no build step beyond the install (docs/dashboard.md).
dashboard: dashboard/node_modules/.installed
dashboard/node_modules/.installed: dashboard/package-lock.json
	npm ci --prefix dashboard --no-audit --no-fund --loglevel=error
	touch $@

# The C# SDK (sdk/csharp) is compiled with Debian's Mono (mcs) and tested under mono;
# NuGet is not used: the SDK needs nothing beyond System.Net.Http.
csharp:
	sh deploy/install_debian_package.sh /usr/bin/mcs mono-mcs mono-runtime libmono-system-net-http4.0-cil

run: install kafka-fetch dashboard
	$(BIN)/sophra up

test: install kafka-fetch browser dashboard csharp
	$(BIN)/pytest -q -p no:cacheprovider --durations=25

# The same suite on the production shape: Kafka and a ClickHouse server in the official
# images, started by testcontainers (needs a Docker engine; tests/backends.py).
test-containers: install kafka-fetch browser dashboard csharp
	SOPHRA_TEST_CONTAINERS=1 $(BIN)/pytest -q -p no:cacheprovider

# Every stage beside its baseline in one run (bench/README.md); wrk drives the api stages.
bench: install kafka-fetch dashboard
	sh deploy/install_debian_package.sh /usr/bin/wrk wrk
	$(BIN)/python bench/run.py

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info tests/browser/node_modules dashboard/node_modules
