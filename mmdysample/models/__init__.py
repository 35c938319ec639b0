# Copyright (c) mmdysample contributors. All rights reserved.
"""Models: the upsampler family and, where a host is installed, its users.

The DySample family needs only torch and mmengine. The FPN neck and the
MaskFormer pixel decoders register in mmdet's registry (the decoders in the
root one too), the SegFormer, UPerNet, DeepLabV3+, Semantic FPN and MaskFormer
heads and DepthFormer's parts (:mod:`.depth` and its DenseDepthHead) in
mmseg's; each is
imported only when its host is installed (the MaskFormer head needs both),
so mmdysample works with either host alone. An error
inside our own integration code is not swallowed.
"""
from importlib.util import find_spec

from .builder import build_upsampler, list_upsamplers
from .guide import GuidedUpsampler, needs_guide
from .upsamplers import DYSAMPLE_PRESETS, DySample

__all__ = [
    'DySample', 'DYSAMPLE_PRESETS', 'GuidedUpsampler', 'build_upsampler',
    'list_upsamplers', 'needs_guide'
]

if find_spec('mmdet') is not None:
    from .necks import (DySampleFPN, DySamplePixelDecoder,  # noqa: F401
                        DySampleTransformerEncoderPixelDecoder)
    __all__ += [
        'DySampleFPN', 'DySamplePixelDecoder',
        'DySampleTransformerEncoderPixelDecoder'
    ]
    from .necks import (DySampleCSPNeXtPAFPN,  # noqa: F401
                        DySampleMSDeformAttnPixelDecoder, DySampleYOLOXPAFPN)
    __all__ += [
        'DySampleCSPNeXtPAFPN', 'DySampleMSDeformAttnPixelDecoder',
        'DySampleYOLOXPAFPN'
    ]

if find_spec('mmseg') is not None:
    from .decode_heads import (  # noqa: F401
        DySampleDepthwiseSeparableASPPHead, DySampleFPNHead,
        DySampleSegformerHead, DySampleUPerHead)
    __all__ += [
        'DySampleDepthwiseSeparableASPPHead', 'DySampleFPNHead',
        'DySampleSegformerHead', 'DySampleUPerHead'
    ]
    from .decode_heads import DenseDepthHead  # noqa: F401
    from .depth import DepthFormerSwin, HAHIHeteroNeck, SigLoss  # noqa: F401
    __all__ += [
        'DenseDepthHead', 'DepthFormerSwin', 'HAHIHeteroNeck', 'SigLoss'
    ]
    if find_spec('mmdet') is not None:
        from .decode_heads import DySampleMaskFormerHead  # noqa: F401
        __all__.append('DySampleMaskFormerHead')
