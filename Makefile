# The two quick-start commands: `make demo` (set up and run) and `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test install clean

demo: $(VENV)/.installed
	$(BIN)/changeflow demo

test: $(VENV)/.installed
	$(BIN)/pytest -q

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) instance .pytest_cache
