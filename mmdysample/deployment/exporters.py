# Copyright (c) mmdysample contributors. All rights reserved.
"""Which of PyTorch's ONNX exporters this torch has, and how to ask for it.

* The TorchScript-based exporter is in every torch we support. From torch
  2.9 ``torch.onnx.export`` defaults to the other one, so it is asked for
  by name (``dynamo=False``).
* The ``torch.export``-based one (``torch.onnx.export(dynamo=True)``,
  with ``dynamic_shapes``) came with torch 2.5; before that
  ``torch.onnx.export`` has no ``dynamo`` keyword at all.
"""
import inspect

import torch

#: The first torch whose ``torch.onnx.export`` takes ``dynamo=True``.
DYNAMO_MIN_TORCH = '2.5'


def dynamo_exporter_available() -> bool:
    """Whether ``torch.onnx.export`` of this torch takes ``dynamo=``."""
    return 'dynamo' in inspect.signature(torch.onnx.export).parameters


def exporter_kwargs(dynamo: bool) -> dict:
    """The keyword of ``torch.onnx.export`` that picks the exporter.

    Args:
        dynamo (bool): True for the ``torch.export``-based exporter, False
            for the TorchScript-based one.

    Returns:
        dict: ``{'dynamo': dynamo}``, or ``{}`` on a torch without the
        keyword (where the TorchScript-based exporter is the only one).

    Raises:
        RuntimeError: If ``dynamo`` is True and this torch is older than
            :data:`DYNAMO_MIN_TORCH`.
    """
    if dynamo_exporter_available():
        return dict(dynamo=bool(dynamo))
    if dynamo:
        raise RuntimeError(
            'dynamo=True (the torch.export-based ONNX exporter) needs torch '
            f'>= {DYNAMO_MIN_TORCH}; this is torch {torch.__version__}. '
            'Export with dynamo=False (the TorchScript-based exporter), or '
            'upgrade torch.')
    return {}
