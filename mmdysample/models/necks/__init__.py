# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdet integration: the FPN that takes ``upsample_cfg`` (needs mmdet)."""
from ..align import fit_to_size
from .dysample_fpn import DySampleFPN

__all__ = ['DySampleFPN', 'fit_to_size']
