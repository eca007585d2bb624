PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pywb (the archive server the tests and the demo start) gets its own environment: its
# dependency brotlipy would replace the `brotli` module of the main one.
PYWB := $(VENV)/pywb

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(PY) -m venv $(PYWB)
	$(PYWB)/bin/pip install -q pywb==2.10.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/webtext demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache
