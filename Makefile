# Two commands do everything on a fresh machine (Python 3.11+, Java 17+, Maven, make):
#   make run   - the embedded default: Kafka broker, worker, api with in-process sink
#   make test  - the whole suite on the real broker and the real ClickHouse engine
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench lock kafka-fetch clean

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

run: install kafka-fetch
	$(BIN)/sophra up

test: install kafka-fetch
	$(BIN)/pytest -q -p no:cacheprovider

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
