# medtwin: two commands on a fresh machine with Python 3.11+ (README.md).
#   make demo   set up .venv, run the baseline scenario, print where the report is
#   make test   set up .venv and the system packages the tests use (scripts/system-packages),
#               run the quality gates and the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test system lint typecheck imports pytest bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "medtwin needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(BIN)/twin run baseline --out runs/baseline --force
	@echo "Read runs/baseline/report.md, or watch it: $(BIN)/twin dashboard runs/baseline"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

system:
	@bash scripts/system-packages

test: system lint typecheck imports pytest

bench: $(STAMP)
	$(BIN)/twin bench --out runs/bench.json

clean:
	rm -rf $(VENV) runs .mypy_cache .pytest_cache .ruff_cache .hypothesis
