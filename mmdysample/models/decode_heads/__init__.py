# Copyright (c) mmdysample contributors. All rights reserved.
"""mmseg integration: decode heads that take an ``upsample_cfg``.

Importing this package needs mmseg; it registers the heads in mmseg's
``MODELS`` registry. The MaskFormer head builds on mmdet's (as mmseg's own
does) and is there only when mmdet is installed too.
"""
from importlib.util import find_spec

from .dysample_segformer_head import DySampleSegformerHead

__all__ = ['DySampleSegformerHead']

if find_spec('mmdet') is not None:
    from .dysample_maskformer_head import DySampleMaskFormerHead  # noqa: F401
    __all__.append('DySampleMaskFormerHead')
