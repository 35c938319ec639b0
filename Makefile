# mmdysample developer entry points. `make help` lists them.
#
# `make install` builds a virtual environment in .venv with the stack that is
# known to work on CPU (see README.md, "Installation"). It is idempotent: a
# second run only re-checks the stamp. Override TORCH_SPEC to bring another
# torch (e.g. a CUDA build) before mmcv is compiled against it.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
MMCV_SPEC   ?= mmcv==2.1.0
MAX_JOBS    ?= 2
# pytest-xdist workers of `make test` (0: none, in one process). Files stay
# whole on one worker (--dist loadfile), so module fixtures are made once.
TEST_JOBS   ?= 2
PYTEST_ARGS ?=
DATA_ROOT   ?= data/synthetic
DEMO_CONFIG ?= configs/faster_rcnn/faster-rcnn_r18_fpn-dysample-lpg4_synthetic.py
DEMO_DIR    ?= work_dirs/demo

BIN   := $(VENV)/bin
PY    := $(BIN)/python
PIP   := $(PY) -m pip
STAMP := $(VENV)/.mmdysample-installed

.PHONY: help install test demo data clean-venv

help:
	@echo "make install  - create $(VENV) with torch, mmcv (built from source), mmdet, mmseg and mmdysample"
	@echo "make test     - install, then run the whole test suite"
	@echo "make data     - write the built-in synthetic dataset under data/synthetic"
	@echo "make demo     - install, generate data, train + test DySample Faster R-CNN on it"

install: $(STAMP)

$(STAMP): setup.py pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(PIP) install -q "$(TORCH_SPEC)" "setuptools>=77,<81" wheel numpy ninja
	@# mmcv ships no wheels for this torch: build it (about 20 min on 2 cores
	@# the first time; pip caches the wheel, later installs take seconds).
	@$(PY) -c "import mmcv.ops" 2>/dev/null || { \
	  echo "Building $(MMCV_SPEC) from source (first time: about 20 minutes)..."; \
	  MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation "$(MMCV_SPEC)"; }
	@# Editable: pip runs setup.py's build_py, which links configs/ and
	@# tools/ into mmdysample/.mim (what mmdysample:: bases and mim read).
	$(PIP) install -q --no-build-isolation -e ".[tests]"
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

# Train DySample Faster R-CNN on the built-in data (about 10 min on 2 CPU
# cores), then evaluate the checkpoint it saved with tools/test.py.
demo: data
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CONFIG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
	    --work-dir $(DEMO_DIR)/test

clean-venv:
	rm -rf $(VENV)
