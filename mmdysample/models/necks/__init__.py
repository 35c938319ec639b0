# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdet integration: the FPN and the MaskFormer pixel decoders that take
``upsample_cfg`` (needs mmdet)."""
from ..align import fit_to_size
from .dysample_fpn import DySampleFPN
from .dysample_pixel_decoder import (DySamplePixelDecoder,
                                     DySampleTransformerEncoderPixelDecoder)

__all__ = [
    'DySampleFPN', 'DySamplePixelDecoder',
    'DySampleTransformerEncoderPixelDecoder', 'fit_to_size'
]
