# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdet integration: the FPN that takes ``upsample_cfg`` (needs mmdet)."""
from .dysample_fpn import DySampleFPN, fit_to_size

__all__ = ['DySampleFPN', 'fit_to_size']
