# Copyright (c) mmdysample contributors. All rights reserved.
import os

import pytest
import torch

from mmdysample.deployment.exporters import (DYNAMO_MIN_TORCH,
                                             dynamo_exporter_available)


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist, as ``make test`` runs), give
    each of the N workers its share of the cores: torch's default of one
    thread per core in every worker would oversubscribe them."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def uses_dynamo_exporter(item) -> bool:
    """Marked ``dynamo_export``, or parametrised with ``dynamo=True``."""
    callspec = getattr(item, 'callspec', None)
    return ('dynamo_export' in item.keywords
            or (callspec is not None
                and callspec.params.get('dynamo') is True))


def pytest_collection_modifyitems(config, items):
    """Skip (never pass) ``gpu`` tests on machines without CUDA, and the
    tests of the ``torch.export``-based ONNX exporter on a torch without
    it."""
    skip_gpu = None if torch.cuda.is_available() else pytest.mark.skip(
        reason='needs a CUDA device')
    skip_dynamo = None if dynamo_exporter_available() else pytest.mark.skip(
        reason='torch.onnx.export(dynamo=True) needs torch >= '
        f'{DYNAMO_MIN_TORCH}; this is torch {torch.__version__}')
    for item in items:
        if skip_gpu is not None and 'gpu' in item.keywords:
            item.add_marker(skip_gpu)
        if skip_dynamo is not None and uses_dynamo_exporter(item):
            item.add_marker(skip_dynamo)
