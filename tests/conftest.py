# Copyright (c) mmdysample contributors. All rights reserved.
import os

import pytest
import torch


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist, as ``make test`` runs), give
    each of the N workers its share of the cores: torch's default of one
    thread per core in every worker would oversubscribe them."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(config, items):
    """Skip (never pass) ``gpu`` tests on machines without CUDA."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason='needs a CUDA device')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip_gpu)
