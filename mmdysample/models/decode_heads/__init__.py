# Copyright (c) mmdysample contributors. All rights reserved.
"""mmseg integration: decode heads that take an ``upsample_cfg``: SegFormer,
UPerNet, DeepLabV3+, Semantic FPN, DepthFormer's DenseDepth decoder (depth
estimation) and MaskFormer's (see below).

Importing this package needs mmseg; it registers the heads in mmseg's
``MODELS`` registry. The MaskFormer head builds on mmdet's (as mmseg's own
does) and is there only when mmdet is installed too.
"""
from importlib.util import find_spec

from .dense_depth_head import DenseDepthHead
from .dysample_fpn_head import DySampleFPNHead
from .dysample_segformer_head import DySampleSegformerHead
from .dysample_sep_aspp_head import DySampleDepthwiseSeparableASPPHead
from .dysample_uper_head import DySampleUPerHead

__all__ = [
    'DenseDepthHead', 'DySampleDepthwiseSeparableASPPHead', 'DySampleFPNHead',
    'DySampleSegformerHead', 'DySampleUPerHead'
]

if find_spec('mmdet') is not None:
    from .dysample_maskformer_head import DySampleMaskFormerHead  # noqa: F401
    __all__.append('DySampleMaskFormerHead')
