# Two entry points that work on a fresh machine with python3 and pip: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: demo test sync nbtest pytest readme export clean-nbs bench

# the demo needs the package alone; the tests and the tools of development need its dev extras too
$(RUNTIME): settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(RUNTIME)
	$(BIN)/reasoning-entropy demo

test: $(STAMP) sync nbtest pytest

# the package is generated from nbs/: exporting again must change nothing
sync: $(STAMP)
	@before=$$(cd reasoning_entropy && find . -name '*.py' -not -path '*/__pycache__/*' | sort | xargs sha1sum); \
	$(BIN)/nbdev_export; \
	after=$$(cd reasoning_entropy && find . -name '*.py' -not -path '*/__pycache__/*' | sort | xargs sha1sum); \
	if [ "$$before" != "$$after" ]; then echo "reasoning_entropy/ is out of sync with nbs/: run nbdev_export and commit"; diff <(echo "$$before") <(echo "$$after"); exit 1; fi; \
	if [ -n "$$(git status --porcelain -- reasoning_entropy 2>/dev/null)" ] && [ -n "$$CI" ]; then git status --porcelain -- reasoning_entropy; echo "exported modules differ from git"; exit 1; fi; \
	echo "sync: reasoning_entropy/ matches nbs/"

nbtest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing

pytest: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile tests  # two test files at a time (pytest-xdist): most tests run the CLI in one-thread subprocesses

export: $(STAMP)
	$(BIN)/nbdev_export

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

# README.md from nbs/index.ipynb (Quarto, and so nbdev_readme, is not available here)
readme: $(STAMP)
	$(BIN)/jupyter nbconvert --execute --to markdown --TagRemovePreprocessor.remove_cell_tags='["hide"]' --output-dir . --output README nbs/index.ipynb
	@sed -i -e '/^#| /d' README.md

bench: $(STAMP)
	$(PY) benchmarks/bench_engine.py
