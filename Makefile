# The front door: `make help` lists it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TRIAL_ARGS ?=
EXTRAS ?= cli,test,http,sentry,dev

.PHONY: help test lint bench bench-soak bench-http bench-compare bench-fleet demo docs dist clean

help: ## this list
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Options: PYTHON=python3.13 (the Python to use), VENV=.venv313, TRIAL_ARGS=tests.test_cli"

# Checked when make starts, before anything is created, so a too-old python3
# leaves no .venv behind; $(error) is one line.
ifneq ($(filter-out help clean,$(or $(MAKECMDGOALS),help)),)
ifneq ($(shell $(PYTHON) -c 'import sys; print(int(sys.version_info >= (3, 10)))' 2>/dev/null),1)
$(error Pace needs Python 3.10 or later, and $(PYTHON) is $(or $(shell $(PYTHON) -V 2>&1 | grep '^Python'),not found): run make $(or $(MAKECMDGOALS),test) PYTHON=python3.12 (or another Python 3.10+))
endif
endif

$(STAMP): setup.cfg setup.py
	@test ! -x $(BIN)/python || $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { \
	  echo "$(VENV) was made with $$($(BIN)/python -V 2>&1), too old for Pace: remove it (make clean) and run make again"; \
	  exit 1; }
	@echo "Setting up $(VENV) with $$($(PYTHON) -V): installing Pace and what its tests, docs and demo need (a minute or two the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@# compat mode puts the checkout itself on sys.path, so that Twisted finds
	@# twisted/plugins/pace_plugin.py next to the package.
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]' \
	  --config-settings editable_mode=compat
	@touch $@

test: $(STAMP) ## run the test suite (starts its own redis-server)
	$(BIN)/python -W error::DeprecationWarning:pace -m twisted.trial $(TRIAL_ARGS) tests

lint: $(STAMP) ## ruff check and format check, mypy
	$(BIN)/ruff check pace tests bench examples twisted
	$(BIN)/ruff format --check pace tests bench examples twisted
	$(BIN)/mypy pace

bench: $(STAMP) ## throughput, throttle, fleet, scheduler and sweep benchmarks (bench/RESULTS.md)
	$(BIN)/python bench/run.py
	@echo "== Python calls per job on the hot path (cProfile; the same on a busy machine)"
	$(BIN)/python bench/calls_per_job.py --mode reliable
	$(BIN)/python bench/calls_per_job.py --mode at-most-once
	@echo "== throttle: CPU per 1,000 jobs at 100 jobs/s"
	$(BIN)/python bench/throttle_cpu.py --jobs 1000
	@echo "== fleet: a shared limit across 4 twistd processes, fleet pause latency"
	$(BIN)/python bench/fleet.py
	@echo "== delayed jobs: lateness under load, idle cost of the mover"
	$(BIN)/python bench/schedule.py
	@echo "== the sweep for dead workers with 10,000 registered"
	$(BIN)/python bench/sweep.py

bench-fleet: $(STAMP) ## shared limit and fleet pause across twistd processes
	$(BIN)/python bench/fleet.py

bench-soak: $(STAMP) ## ten million jobs through one worker
	$(BIN)/python bench/run.py --cases soak --soak 10000000

bench-http: $(STAMP) ## the HTTP layers, one by one
	$(BIN)/python bench/http_layers.py

bench-compare: $(STAMP) ## Pace next to arq, rq, Celery and dramatiq (bench/.venvs/<peer>)
	$(BIN)/python bench/compare.py

demo: $(STAMP) ## 20,000 HTTP jobs through a real worker, live
	@$(BIN)/python -m pace.demo

docs: $(STAMP) ## the Sphinx docs, warnings as errors
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

dist: $(STAMP) ## build the sdist and wheel into dist/ and check them with twine
	@rm -rf dist
	@echo "Building the sdist and the wheel into dist/..."
	@$(BIN)/python -m build --outdir dist . > $(VENV)/build.log 2>&1 || { tail -30 $(VENV)/build.log; exit 1; }
	@$(BIN)/twine check --strict dist/*

clean: ## remove the virtualenv and everything built
	rm -rf $(VENV) _trial_temp* docs/_build *.egg-info dist build
