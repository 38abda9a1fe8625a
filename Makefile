# Every target sets up what it needs: a fresh clone only needs Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-peers grammar clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("wfx needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dask,argo,lsp]'
	# setuptools (which venv adds on Python 3.11) hooks a .pth file into every start of
	# every Python here, 6-9 ms each; wfx builds with hatchling and never uses it
	$(BIN)/python -m pip uninstall --quiet --disable-pip-version-check -y setuptools
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

## demo: run a real example workflow
demo: $(STAMP)
	$(BIN)/wfx validate examples/*.yaml
	$(BIN)/wfx plan examples/production-deployment.yaml -i environment=prd
	$(BIN)/wfx run examples/production-deployment.yaml -i environment=prd

## test: lint, type-check and run the whole test suite
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/

unit: $(STAMP)
	$(BIN)/python -m compileall -q src
	# the code of wfx's classes, as compileall writes bytecode: written even where
	# PYTHONDONTWRITEBYTECODE keeps each `wfx` of the suite from writing it (about 40 ms each)
	$(BIN)/python -m wfx.runtime.classcache
	$(BIN)/pytest -n auto -q

## grammar: rebuild the prebuilt parser table after editing grammar/expressions.lark
grammar: $(STAMP)
	$(BIN)/python -m wfx.expr.table

## bench: benchmarks with same-run baselines
bench: $(STAMP)
	$(BIN)/python -m compileall -q src
	$(BIN)/python bench/run.py

## bench-peers: wfx beside make, go-task and doit as users run them (../shared/bench/peers)
bench-peers: $(STAMP)
	$(BIN)/python -m compileall -q src
	$(BIN)/python bench/peers.py --runs 5 --warmup 1

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
