# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdet integration: the FPN, RTMDet's and YOLOX's PAFPNs and the
MaskFormer / Mask2Former pixel decoders that take ``upsample_cfg`` (needs
mmdet)."""
from ..align import fit_to_size
from .dysample_fpn import DySampleFPN
from .dysample_msdeformattn_pixel_decoder import \
    DySampleMSDeformAttnPixelDecoder
from .dysample_pafpn import DySampleCSPNeXtPAFPN, DySampleYOLOXPAFPN
from .dysample_pixel_decoder import (DySamplePixelDecoder,
                                     DySampleTransformerEncoderPixelDecoder)

__all__ = [
    'DySampleFPN', 'DySamplePixelDecoder',
    'DySampleTransformerEncoderPixelDecoder', 'fit_to_size',
    'DySampleCSPNeXtPAFPN', 'DySampleYOLOXPAFPN',
    'DySampleMSDeformAttnPixelDecoder'
]
