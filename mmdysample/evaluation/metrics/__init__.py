# Copyright (c) mmdysample contributors. All rights reserved.
from .boundary_iou_metric import BoundaryIoUMetric
from .depth_metric import CheckedDepthMetric

__all__ = ['BoundaryIoUMetric', 'CheckedDepthMetric']
