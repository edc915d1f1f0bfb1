# regdb: `make run` starts everything, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The tools that write the lock, pinned like everything else, in their own venv.
LOCK_VENV := .lock-venv
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.6.2

.PHONY: install lock run test bench bench-health bench-report wrk lint fmt clean

install: $(STAMP)

# Exactly what CI tested: every package from the lock, hashes checked, then regdb itself
# without dependencies. `pip check` fails when pyproject.toml names a package the lock
# lacks (run `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (regdb needs Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check || { echo "error: $(LOCK) does not match pyproject.toml: run make lock"; exit 1; }
	@touch $(STAMP)

# Re-pin every transitive dependency (and the build backend) from pyproject.toml's pins,
# with hashes. Run after changing a dependency in pyproject.toml; commit the lock.
lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install -q pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION); }
	$(LOCK_VENV)/bin/pip-compile -q --all-extras --all-build-deps --allow-unsafe --strip-extras \
	  --generate-hashes --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

run: install
	$(BIN)/regdb serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmarks' load generator, installed the way .ci/run installs docker-registry.
wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }

bench: install wrk
	$(BIN)/python -m bench.api $(BENCH_ARGS)

bench-health: install wrk
	$(BIN)/python -m bench.health $(BENCH_ARGS)

# The README's performance tables, rewritten from bench/results/*.json.
bench-report: install
	$(BIN)/python -m bench.report

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(LOCK_VENV) data .pytest_cache .mypy_cache .ruff_cache
