# mmdysample developer entry points. `make help` lists them.
#
# `make install` builds a virtual environment in .venv with the stack that is
# known to work on CPU (see README.md, "Installation"). It is idempotent: a
# second run only re-checks the stamp. Override TORCH_SPEC to bring another
# torch (e.g. a CUDA build) before mmcv is compiled against it.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
# numpy of the stack: an older torch needs numpy 1.x (e.g. NUMPY_SPEC="numpy<2"
# with TORCH_SPEC=torch==2.1.2); the default takes what pip resolves.
NUMPY_SPEC  ?= numpy
MMCV_SPEC   ?= mmcv==2.1.0
MAX_JOBS    ?= 2
# Where the mmcv wheels built here are kept, one folder per torch / python.
MMCV_WHEELS ?= $(HOME)/.cache/mmdysample-wheels
# The wheel test (tests/packaging) installs this torch's mmcv from there.
export MMCV_WHEELS
# pytest-xdist workers of `make test` (0: none, in one process). Files stay
# whole on one worker (--dist loadfile), so module fixtures are made once.
TEST_JOBS   ?= 2
PYTEST_ARGS ?=
DATA_ROOT   ?= data/synthetic
DEMO_CONFIG ?= configs/faster_rcnn/faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py
DEMO_DIR    ?= work_dirs/demo
# `make gpu-check` (docs/testing.md): its own environment, results folder,
# an optional wheel folder for offline installs (`make gpu-wheels` fills
# .whl), and the torch it installs where the base python's torch sees no
# CUDA: plain `torch` (the registry's CUDA build), or TORCH_SPEC when given
# on the command line or in the environment (its default above is make
# install's CPU pin).
GPU_VENV         ?= .venv-gpu
GPU_CHECK_OUT    ?= work_dirs/gpu_check
GPU_CHECK_WHEELS ?=
GPU_CHECK_ARGS   ?=
GPU_TORCH_SPEC   ?= $(if $(filter file,$(origin TORCH_SPEC)),torch,$(TORCH_SPEC))
PIP_ARGS         ?=
WHEEL_DIR        ?= .whl

# The folder name of the torch in $(VENV): torch-2.13.0+cpu-py311.
export MMCV_TAG := import sys, torch; \
    print(f"torch-{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}")

BIN   := $(VENV)/bin
PY    := $(BIN)/python
PIP   := $(PY) -m pip
STAMP := $(VENV)/.mmdysample-installed

.PHONY: help install test demo data data-fine data-depth clean-venv gpu-check gpu-wheels

help:
	@echo "make install  - create $(VENV) with torch, mmcv (built from source), mmdet, mmseg and mmdysample"
	@echo "make test     - install, then run the whole test suite"
	@echo "make data     - write the built-in synthetic dataset under data/synthetic"
	@echo "make data-fine - write its fine-scenes kind (thin parts, small objects) under data/synthetic_fine"
	@echo "make data-depth - write the built-in depth data (rooms, NYU Depth V2 layout) under data/synthetic_depth"
	@echo "make demo     - install, generate data, train + test DySample Faster R-CNN on it"
	@echo "make gpu-check  - on a CUDA machine: $(GPU_VENV) without mmcv/mmdet/mmseg, the gpu tests and the CUDA benchmark (< 8 min)"
	@echo "make gpu-wheels - download into $(WHEEL_DIR) the wheels an offline gpu-check needs (then GPU_CHECK_WHEELS=$(WHEEL_DIR))"

install: $(STAMP)

$(STAMP): setup.py pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(PIP) install -q "$(TORCH_SPEC)" "$(NUMPY_SPEC)" "setuptools>=77,<81" wheel ninja
	@# mmcv ships no wheels for this torch: build it once per torch (about 20
	@# min on 2 cores) into $(MMCV_WHEELS)/torch-<version>-py<XY>, then install
	@# from there (seconds). Not pip's cache: it keys a built wheel by the
	@# sdist alone and would hand a wheel built for another torch to this one.
	@# torch >= 2.14 needs C++20, which mmcv 2.1.0's setup.py does not ask
	@# for: tools/misc/build_mmcv_wheel.py builds its sdist with the flag
	@# raised.
	@$(PY) -c "import mmcv.ops" 2>/dev/null || { \
	  dir="$(MMCV_WHEELS)/$$($(PY) -c "$$MMCV_TAG")"; \
	  $(PIP) install -q --no-deps --no-index --find-links "$$dir" \
	      "$(MMCV_SPEC)" 2>/dev/null || { \
	    echo "Building $(MMCV_SPEC) into $$dir (first time: about 20 minutes)..."; \
	    if $(PY) tools/misc/build_mmcv_wheel.py --needs-cxx20; then \
	      MAX_JOBS=$(MAX_JOBS) $(PY) tools/misc/build_mmcv_wheel.py \
	          --spec "$(MMCV_SPEC)" --out "$$dir"; \
	    else \
	      MAX_JOBS=$(MAX_JOBS) $(PIP) wheel --no-deps --no-build-isolation \
	          --no-cache-dir -w "$$dir" "$(MMCV_SPEC)"; \
	    fi; } && \
	  $(PIP) install -q --find-links "$$dir" "$(MMCV_SPEC)"; }
	@# Editable: pip runs setup.py's build_py, which links configs/ and
	@# tools/ into mmdysample/.mim (what mmdysample:: bases and mim read).
	@# torch and numpy are named again so that no dependency (opencv,
	@# onnx, triton) moves them: pip picks versions that fit them instead.
	$(PIP) install -q --no-build-isolation -e ".[tests]" "$(TORCH_SPEC)" \
	    "$(NUMPY_SPEC)"
	@# panopticapi (needed by mmdet's PQ metric) is on PyPI as panopticapi-lite,
	@# which declares numpy<2 and scikit-image but works with numpy 2 and
	@# without scikit-image. Installed last and --no-deps, so no install
	@# re-checks it; `pip check` names it (the one known conflict, README.md).
	$(PIP) install -q --no-deps "panopticapi-lite==0.2.0"
	$(PY) -c "import mmcv.ops, mmdet, mmseg, mmdysample; print('mmdysample', mmdysample.__version__, 'ready')"
	@touch $(STAMP)

test: install
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile --durations=10 $(PYTEST_ARGS)

data: install
	$(PY) tools/misc/generate_synthetic_data.py --out $(DATA_ROOT)

data-fine: install
	$(PY) tools/misc/generate_synthetic_data.py --scenes fine \
	    --out data/synthetic_fine

data-depth: install
	$(PY) tools/misc/generate_synthetic_data.py --scenes depth \
	    --out data/synthetic_depth

# Train DySample Faster R-CNN on the built-in data (about 10 min on 2 CPU
# cores), then evaluate the checkpoint it saved with tools/test.py.
demo: data
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
	    --work-dir $(DEMO_DIR)/test

clean-venv:
	rm -rf $(VENV)

# Needs no `make install`: it builds $(GPU_VENV) itself (stops at once,
# creating nothing, on a machine without CUDA).
gpu-check:
	$(PYTHON) tools/misc/gpu_check.py --python $(PYTHON) --venv $(GPU_VENV) \
	    --out $(GPU_CHECK_OUT) --torch-spec "$(GPU_TORCH_SPEC)" \
	    --pip-args="$(PIP_ARGS)" \
	    $(if $(GPU_CHECK_WHEELS),--wheels $(GPU_CHECK_WHEELS)) $(GPU_CHECK_ARGS)

gpu-wheels:
	$(PYTHON) tools/misc/gpu_check.py --python $(PYTHON) \
	    --pip-args="$(PIP_ARGS)" --download-wheels $(WHEEL_DIR)
