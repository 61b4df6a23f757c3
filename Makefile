# Set-up and entry points. `make demo` and `make test` each create .venv when
# it is missing, install the project into it and then run.

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv clean

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

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
