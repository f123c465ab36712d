# The front door: `make demo`, `make test`, `make lint`, `make bench`, `make docs`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TRIAL_ARGS ?=

.PHONY: test lint bench bench-soak bench-http bench-compare demo docs clean

$(STAMP): setup.cfg setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# compat mode puts the checkout itself on sys.path, so that Twisted finds
	# twisted/plugins/pace_plugin.py next to the package.
	$(BIN)/python -m pip install -q -e '.[test,http,sentry,dev]' --config-settings editable_mode=compat
	@touch $@

test: $(STAMP)
	$(BIN)/python -W error::DeprecationWarning:pace -m twisted.trial $(TRIAL_ARGS) tests

lint: $(STAMP)
	$(BIN)/ruff check pace tests bench examples twisted
	$(BIN)/ruff format --check pace tests bench examples twisted

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-soak: $(STAMP)
	$(BIN)/python bench/run.py --cases soak --soak 10000000

bench-http: $(STAMP)
	$(BIN)/python bench/http_layers.py

# Pace next to arq, rq, Celery and dramatiq, each in its own bench/.venvs/<peer>.
bench-compare: $(STAMP)
	$(BIN)/python bench/compare.py

demo: $(STAMP)
	$(BIN)/python -m pace.demo

docs: $(STAMP)
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) _trial_temp* docs/_build *.egg-info
