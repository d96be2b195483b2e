# Makefile of the diffnotes book.  `make help` lists the targets.
#
# Everything runs in a virtualenv .venv/ inside the repository, created and
# filled on demand: pip runs again only when requirements.txt or pyproject.toml
# is newer than the stamp file .venv/.installed.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := book
.DELETE_ON_ERROR:
# the targets of `make test` must run in order, never in parallel
.NOTPARALLEL:

PYTHON    ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
BUILD     := _build
# cold build of `make test` (its own execution cache lives under it)
TEST_OUT  := $(BUILD)/test
TEST_HTML := $(TEST_OUT)/_build/html
SHOTS     := $(BUILD)/screenshots
# MNIST (Chapter 5): the folder with the official IDX files. The machines that build this book
# hold the test split in ../shared/data/mnist, and the test command and CI read it from there;
# elsewhere diffnotes downloads the files (checking their MD5) into ~/.cache/diffnotes/mnist.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(origin DIFFNOTES_DATA),undefined)
ifneq ($(wildcard $(SHARED_MNIST)/t10k-images-idx3-ubyte.gz),)
export DIFFNOTES_DATA := $(SHARED_MNIST)
endif
endif
# hash of the package source recorded at the last successful `make book`
PKG_HASH_FILE := $(BUILD)/.diffnotes-src-hash
# a chapter whose execution takes longer than this fails `make test`
MAX_NOTEBOOK_SECONDS ?= 180
# paths linted by ruff (only those that exist: git keeps no empty folder)
LINT_PATHS := $(wildcard diffnotes tests benchmarks tools)

# sha256 over the names and contents of diffnotes/**/*.py (and requirements.txt: new
# library versions can change the outputs too)
PKG_HASH_CMD := { find diffnotes -name '*.py' -not -path '*/__pycache__/*' -print0 \
	| LC_ALL=C sort -z | xargs -0 -r sha256sum; sha256sum requirements.txt; } \
	| sha256sum | cut -d' ' -f1

.PHONY: help book test lint unit test-build browser-check lab bench clean venv

## help          list the targets
help:
	@echo "diffnotes -- targets:"
	@sed -n -e 's/^## \([a-z]\)/  make \1/p' -e 's/^##  */                     /p' $(MAKEFILE_LIST)

## venv          create .venv and install requirements.txt + the package (pip install -e .)
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@if ! $(BIN)/python -c 'import sys' >/dev/null 2>&1; then \
		echo ">>> creating $(VENV)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e .
	touch $@

## book          (default) build the HTML book into _build/html, executing the chapters
##               with the jupyter-cache; the cache is cleared when diffnotes/**/*.py changed
book: $(STAMP)
	@new=$$($(PKG_HASH_CMD)); old=$$(cat $(PKG_HASH_FILE) 2>/dev/null || true); all=""; \
	if [ "$$new" != "$$old" ]; then \
		echo ">>> diffnotes/ (or requirements.txt) changed since the last build:" \
			"clearing the execution cache, re-executing every chapter"; \
		rm -rf $(BUILD)/.jupyter_cache; all="--all"; \
	fi; \
	$(BIN)/jupyter-book build . $$all; \
	mkdir -p $(BUILD); echo "$$new" > $(PKG_HASH_FILE)
	@$(BIN)/python tools/exec_report.py $(BUILD)/.jupyter_cache
	@echo ">>> the book: $(CURDIR)/$(BUILD)/html/index.html"

## test          lint, then the unit tests and the cold build of the book (warnings are
##               errors) side by side, one core each (pytest's output is shown when both
##               are done), then the headless-browser check of every page
test: lint
	@mkdir -p $(BUILD); rm -f $(BUILD)/pytest.rc; \
	export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1; \
	echo ">>> pytest runs beside the cold build, one thread each; its output: $(BUILD)/pytest.log"; \
	( $(MAKE) --no-print-directory unit > $(BUILD)/pytest.log 2>&1; \
	  echo $$? > $(BUILD)/pytest.rc ) & \
	pid=$$!; trap 'kill $$pid 2>/dev/null' INT TERM; \
	brc=0; $(MAKE) --no-print-directory test-build || brc=$$?; \
	wait $$pid || true; \
	echo ">>> pytest:"; cat $(BUILD)/pytest.log; urc=$$(cat $(BUILD)/pytest.rc 2>/dev/null || echo 1); \
	if [ "$$urc" != 0 ] || [ "$$brc" != 0 ]; then \
		echo ">>> make test: FAILED (pytest exit $$urc, cold build exit $$brc)"; exit 1; fi
	$(MAKE) --no-print-directory browser-check
	@echo ">>> make test: all checks passed"

## lint          ruff check diffnotes tests benchmarks tools
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)

## unit          pytest (tests/)
unit: $(STAMP)
	@rc=0; $(BIN)/python -m pytest || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo ">>> WARNING: pytest collected no tests"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

## test-build    cold build into _build/test (no execution cache, -W -n --keep-going)
test-build: $(STAMP)
	rm -rf $(TEST_OUT)
	$(BIN)/jupyter-book build . --path-output $(TEST_OUT) -W -n --keep-going
	$(BIN)/python tools/exec_report.py $(TEST_OUT)/_build/.jupyter_cache \
		--max-seconds $(MAX_NOTEBOOK_SECONDS) --require-all

## browser-check check the pages of the cold build in headless Chromium
##               (screenshots in _build/screenshots/)
browser-check: $(STAMP)
	$(BIN)/python tools/check_html.py $(TEST_HTML) --screenshots $(SHOTS)

## lab           JupyterLab on book/; the .md chapters open as notebooks (jupytext),
##               sliders work (ipywidgets). Extra options: make lab LAB_ARGS="--no-browser --port 8899"
LAB_ARGS ?=
lab: $(STAMP)
	@# make the jupytext notebook view the default viewer of .md files, for this venv only
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@cp tools/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@# a live session draws its figures on demand: no precomputed frames for the static HTML
	DIFFNOTES_STATIC_FRAMES=0 $(BIN)/jupyter lab --ServerApp.root_dir=book $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

## bench         run the benchmarks (python -m benchmarks)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## clean         remove _build/ and caches (keeps .venv; `make distclean` removes it too)
clean:
	rm -rf $(BUILD) book/_build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +

## distclean     clean, and remove .venv
distclean: clean
	rm -rf $(VENV) *.egg-info
.PHONY: distclean
