# Set-up and entry points. `make demo` and `make test` each create .venv when
# it is missing, install the project into it and then run.

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv clean bench bench-deps

demo: $(STAMP)
	$(VENV)/bin/msgin5g demo

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

venv: $(STAMP)

# Reinstall when the project metadata changes.
$(STAMP): pyproject.toml
	@interpreter=$$(scripts/find-python); \
	if [ -z "$$interpreter" ]; then \
		echo "error: no Python >= 3.13 found on PATH or under pyenv; install one (for example 'pyenv install 3.13') and rerun" >&2; \
		exit 1; \
	fi; \
	if [ ! -x $(PY) ]; then \
		echo "creating $(VENV) with $$interpreter"; \
		"$$interpreter" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Benchmarks: bench/run.py writes bench/results.json and the table in
# docs/benchmarks.md. BENCH_ARGS passes options, e.g. BENCH_ARGS="--quick --only kdf".
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS  ?=

bench: $(BENCH_STAMP) bench-deps
	$(PY) bench/run.py $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

# Debian packages that benchmark rows use: h2load (nghttp2-client) and redis-server.
bench-deps:
	@missing=""; \
	command -v h2load >/dev/null 2>&1 || missing="$$missing nghttp2-client"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || { \
			echo "error: could not install$$missing; run 'make bench-deps' as root or install them with apt-get" >&2; \
			exit 1; \
		}; \
	fi

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
