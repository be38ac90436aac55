# The two quick-start commands: `make demo` (set up and run) and `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

FRONTEND = webui/frontend
VENDOR = webui/static/vendor

.PHONY: demo test install frontend clean

demo: $(VENV)/.installed $(VENDOR)/.built
	$(BIN)/changeflow demo

test: $(VENV)/.installed $(VENDOR)/.built
	$(BIN)/pytest -q

install: $(VENV)/.installed $(VENDOR)/.built

frontend: $(VENDOR)/.built

# The pages' browser libraries (bpmn-js, bpmn-js-differ, Chart.js) come from npm with the lock file
# and are bundled into webui/static/vendor/; the built files are not committed.
$(VENDOR)/.built: $(FRONTEND)/package-lock.json $(FRONTEND)/build.mjs $(wildcard $(FRONTEND)/src/*)
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) instance .pytest_cache $(VENDOR) $(FRONTEND)/node_modules test-artifacts
