# The few commands people use. `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo simulate aggregate lint format bench clean

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

test: $(STAMP)  ## everything: unit and real-Redis integration tests on two cores, then the browser tests (one port)
	$(PY) -m pytest -m "not browser" -n 2
	$(PY) -m pytest -m browser

test-fast: $(STAMP)  ## the tests that need neither Redis nor a browser
	$(PY) -m pytest -m "not redis and not browser"

demo: $(STAMP)  ## the whole demo in one command: Redis, aggregator, simulators, dashboard on http://127.0.0.1:8050
	$(PY) app.py

simulate: $(STAMP)  ## run all four simulators against REDIS_URL or the embedded Redis
	$(PY) -m simulators

aggregate: $(STAMP)  ## run one aggregator worker
	$(PY) -m data.aggregator

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)  ## every benchmark, each ending with its RESULT line
	$(PY) -m bench.placement
	$(PY) -m bench.ingest
	$(PY) -m bench.hotspots
	$(PY) -m bench.refresh

clean:
	rm -rf $(VENV) .state .pytest_cache .ruff_cache test-artifacts
