# facetrain developer commands. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/demo
GPU_CHECK_OUT ?= runs/gpu_check.json
# The GPU machine has no .venv (and no registry to build one): there, the plain interpreter with facetrain installed.
RUN_PY := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))

.DEFAULT_GOAL := help
.PHONY: help setup demo demo-gpu gpu-check test test-slow test-all lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

# torch's CUDA build alone is about 5.6 GB in the venv: say so up front rather than fail mid-install with ENOSPC.
SETUP_GIB ?= 8
$(STAMP): pyproject.toml constraints.txt
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); if [ "$$free" -lt $(SETUP_GIB) ]; then \
	  echo "make setup: only $$free GiB free here; .venv needs about 7 GiB (torch's CUDA build). Free space on this disk (old /tmp clones, runs/) and rerun."; \
	  exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,export,slurm,digits,jpeg,audit,track,search,timm]'
	# MTCNN's published P/R/O-Net weights (MIT) for the face detector: only the wheel's weight files are read
	# (facetrain/detect/ runs them in its own modules), so its old torch pin is not installed (--no-deps).
	$(BIN)/pip install --quiet --no-deps facenet-pytorch==2.6.0
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv with facetrain installed (editable) and the dev tools

demo: $(STAMP)  ## synthesize data, train softmax and L2-softmax, score both on the LFW protocol
	$(BIN)/python scripts/demo.py --out $(DEMO_DIR)

demo-gpu: $(STAMP)  ## the 1,000-identity Face-ResNet-27 run where L2-softmax beats softmax (needs a GPU)
	$(BIN)/python scripts/demo.py --gpu --out $(DEMO_DIR)_gpu

gpu-check:  ## one GPU, <= 8 min: loop overhead, MFU, compile, 1M/4M classes, host syncs, GPU decode (JSON: runs/gpu_check.json)
	$(RUN_PY) scripts/gpu_check.py --out $(GPU_CHECK_OUT)

test: $(STAMP)  ## run the default test suite (slow tests excluded)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)  ## run only the slow tests (make test + make test-slow = make test-all)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)  ## run every test, slow ones included
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)  ## ruff check
	$(BIN)/ruff check facetrain hydra_plugins tests scripts

bench: $(STAMP)  ## training throughput, and loader item rates against bare libjpeg-turbo (scripts/bench_*.py)
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_loader.py

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf data runs outputs multirun
