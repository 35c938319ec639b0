# Copyright (c) mmdysample contributors. All rights reserved.
"""mmseg integration: decode heads that take an ``upsample_cfg``.

Importing this package needs mmseg; it registers the heads in mmseg's
``MODELS`` registry.
"""
from .dysample_segformer_head import DySampleSegformerHead

__all__ = ['DySampleSegformerHead']
