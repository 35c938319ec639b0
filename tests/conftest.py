# Copyright (c) mmdysample contributors. All rights reserved.
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """Skip (never pass) ``gpu`` tests on machines without CUDA."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason='needs a CUDA device')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip_gpu)
