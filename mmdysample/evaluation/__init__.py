# Copyright (c) mmdysample contributors. All rights reserved.
"""Evaluation: boundary IoU (bIoU) for semantic segmentation, and depth
metrics with their inputs checked.

The band computation needs only numpy, OpenCV and torch. The metric
registers in mmseg's ``METRICS`` and is imported only when mmseg is
installed, so ``custom_imports=['mmdysample']`` makes
``dict(type='BoundaryIoUMetric')`` available to mmseg evaluators.
"""
from importlib.util import find_spec

from .boundary_iou import (DEFAULT_DILATION_RATIO, boundary_dilation,
                           boundary_intersect_and_union, boundary_pixels,
                           check_dilation_ratio)

__all__ = [
    'DEFAULT_DILATION_RATIO', 'boundary_dilation',
    'boundary_intersect_and_union', 'boundary_pixels', 'check_dilation_ratio'
]

if find_spec('mmseg') is not None:
    from .metrics import BoundaryIoUMetric, CheckedDepthMetric  # noqa: F401
    __all__ += ['BoundaryIoUMetric', 'CheckedDepthMetric']
