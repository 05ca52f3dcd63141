# The two commands: `make demo` runs the exporter on a local testbed, `make test` runs every test
# (and builds the documentation, warnings as errors).
PYTHON ?= python3
VENV := .venv
CROSSBAR_VENV := .venv-crossbar
# The exporter's runtime dependencies only, as in the Docker image: the benchmarks measure the
# exporter from here (the test environment's ocs brings numpy, which autobahn then loads).
RUNTIME_VENV := .venv-runtime
CROSSBAR_VERSION := 26.10.1

.PHONY: test lint docs demo system-deps clean bench-env

bench-env: $(VENV)/.installed $(CROSSBAR_VENV)/.installed $(RUNTIME_VENV)/.installed

system-deps:
	./scripts/install-system-deps.sh

$(VENV)/.installed: setup.cfg pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

# crossbar pulls many dependencies (numpy among them): it gets its own environment.
$(CROSSBAR_VENV)/.installed: | system-deps
	$(PYTHON) -m venv $(CROSSBAR_VENV)
	$(CROSSBAR_VENV)/bin/pip install -q --disable-pip-version-check 'crossbar==$(CROSSBAR_VERSION)'
	touch $@

$(RUNTIME_VENV)/.installed: setup.cfg pyproject.toml | system-deps
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install -q --disable-pip-version-check .
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W -q -b html docs build/docs

test: $(VENV)/.installed $(CROSSBAR_VENV)/.installed $(RUNTIME_VENV)/.installed lint docs
	$(VENV)/bin/pytest

demo: $(VENV)/.installed $(CROSSBAR_VENV)/.installed
	$(VENV)/bin/python -m testbed.demo --crossbar $(CROSSBAR_VENV)/bin/crossbar

clean:
	rm -rf $(VENV) $(CROSSBAR_VENV) $(RUNTIME_VENV) test-output .demo
