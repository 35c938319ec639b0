# Copyright (c) mmdysample contributors. All rights reserved.
from .boundary_iou_metric import BoundaryIoUMetric

__all__ = ['BoundaryIoUMetric']
