# reds_tf developer and user entry points. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11
export TF_CPP_MIN_LOG_LEVEL ?= 3
RECIPE ?= models/ds_cnn_s-fashion_mnist.yaml
RUN_DIR ?= runs/$(basename $(notdir $(RECIPE)))$(if $(SCHEDULE),-$(SCHEDULE))$(if $(SEED),-seed$(SEED))
MODEL ?= ds_cnn_s
APT_PACKAGES := dataset-fashion-mnist espeak-ng flite gcc-arm-none-eabi libnewlib-arm-none-eabi clang libclang-rt-14-dev

.PHONY: help install install-system install-python quickstart run test test-slow lint \
        train-kws train-vww demo-kws flash-nano33 m4-size bench firmware-test clean

help:
	@echo "make quickstart      set up everything, then run the default recipe (DS-CNN-S on Fashion-MNIST)"
	@echo "make test            run the default test suite (about 15 min on 2 cores)"
	@echo "make test-slow       run the slow tests"
	@echo "make run RECIPE=...  run any recipe under models/ (SCHEDULE=full for the long schedule, SEED=k for another seed)"
	@echo "make train-kws DATA_DIR=... [MODEL=ds_cnn_s|dnn_s|cnn_s|ds_cnn_l]   Speech Commands v0.02"
	@echo "make train-vww DATA_DIR=...  Visual Wake Words (vw_coco2014_96 or TFRecords)"
	@echo "make demo-kws        synthetic espeak/flite keywords through the KWS pipeline (labelled synthetic)"
	@echo "make flash-nano33    build and upload the Arduino Nano 33 BLE sketch (needs arduino-cli)"
	@echo "make m4-size BLOB_C=out/model_blob.c   Cortex-M4 flash/RAM of runtime + app + that model's blob"
	@echo "make bench           run the benchmarks under benchmarks/"
	@echo "make lint            ruff, import-linter, clang-format check"

# System packages: Fashion-MNIST (the embedded default data), speech synthesis for the KWS demo,
# the Cortex-M4 cross compiler, clang and its libFuzzer runtime (libclang-rt-14-dev, only a Recommends of
# clang, which --no-install-recommends skips). Skipped where apt is absent or we are not root.
install-system:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	else echo "install-system: no apt-get as root; install these yourself: $(APT_PACKAGES)"; fi

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install-python: $(PY)
	$(PY) -m pip install -q -e ".[dev]"

install: install-system install-python

quickstart: install run

run: $(PY)
	$(VENV)/bin/reds run --recipe $(RECIPE) --run-dir $(RUN_DIR) $(if $(SCHEDULE),--schedule $(SCHEDULE)) $(if $(SEED),--seed $(SEED)) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(RESUME),--resume) $(if $(QUIET),--quiet)

test: $(PY)
	$(PY) -m pytest -m "not slow" -q --durations=15

test-slow: $(PY)
	$(PY) -m pytest -m slow -q --durations=15

lint: $(PY)
	$(VENV)/bin/ruff check reds_tf tests benchmarks
	$(VENV)/bin/lint-imports

# --- real datasets: DATA_DIR is checked first, so a wrong layout fails at once with the expected tree ----
KWS_RECIPE = models/$(MODEL)-speech_commands.yaml
train-kws: $(PY)
	@test -f $(KWS_RECIPE) || { echo "train-kws: no recipe $(KWS_RECIPE); MODEL is one of: ds_cnn_s dnn_s cnn_s ds_cnn_l" >&2; exit 2; }
	@$(PY) -m reds_tf.data check speech_commands "$(DATA_DIR)" >/dev/null
	$(VENV)/bin/reds run --recipe $(KWS_RECIPE) --data-dir "$(DATA_DIR)" --run-dir $(or $(RUN_DIR_KWS),runs/$(MODEL)-speech_commands) $(if $(SCHEDULE),--schedule $(SCHEDULE)) $(if $(LIMIT),--limit $(LIMIT)) $(if $(RESUME),--resume) $(if $(QUIET),--quiet)

train-vww: $(PY)
	@$(PY) -m reds_tf.data check vww "$(DATA_DIR)" >/dev/null
	$(VENV)/bin/reds run --recipe models/mobilenet_v1-vww.yaml --data-dir "$(DATA_DIR)" --run-dir $(or $(RUN_DIR_VWW),runs/mobilenet_v1-vww) $(if $(SCHEDULE),--schedule $(SCHEDULE)) $(if $(LIMIT),--limit $(LIMIT)) $(if $(RESUME),--resume) $(if $(QUIET),--quiet)

# SYNTHETIC keywords (espeak-ng/flite voices): a demo of the KWS pipeline, never Speech Commands accuracy.
DEMO_KWS_DIR ?= data/synthetic_kws
demo-kws: $(PY)
	@test -f $(DEMO_KWS_DIR)/validation_list.txt || $(PY) -m reds_tf.data.synth_kws $(DEMO_KWS_DIR) --per-word $(or $(PER_WORD),100)
	$(MAKE) train-kws DATA_DIR=$(DEMO_KWS_DIR) MODEL=ds_cnn_s SCHEDULE=$(or $(SCHEDULE),short) RUN_DIR_KWS=runs/SYNTHETIC-demo-kws

flash-nano33:
	$(MAKE) -C firmware flash-nano33 $(if $(PORT),PORT=$(PORT))

# BLOB_C relative to this directory or absolute (firmware/ runs the build, so pass it on absolute).
m4-size:
	@test -n "$(BLOB_C)" || { echo "m4-size: give BLOB_C=path/model_blob.c (written by python -m reds_tf.convert)" >&2; exit 2; }
	$(MAKE) -C firmware m4-size BLOB_C="$(abspath $(BLOB_C))"

firmware-test:
	$(MAKE) -C firmware test model-test

bench: $(PY)
	$(PY) benchmarks/knapsack.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/dress_train_step.py
	$(PY) benchmarks/mcu_cycles.py
	$(PY) benchmarks/multiworker.py --out results/bench/multiworker.json

clean:
	rm -rf build dist *.egg-info .pytest_cache
	$(MAKE) -C firmware clean
