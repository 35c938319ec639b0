# Copyright (c) mmdysample contributors. All rights reserved.
"""Models: the upsampler family and, where a host is installed, its users.

The DySample family needs only torch and mmengine. The FPN neck registers in
mmdet's registry and the SegFormer head in mmseg's; each is imported only when
its host is installed, so mmdysample works with either host alone. An error
inside our own integration code is not swallowed.
"""
from importlib.util import find_spec

from .builder import build_upsampler, list_upsamplers
from .upsamplers import DYSAMPLE_PRESETS, DySample

__all__ = [
    'DySample', 'DYSAMPLE_PRESETS', 'build_upsampler', 'list_upsamplers'
]

if find_spec('mmdet') is not None:
    from .necks import DySampleFPN  # noqa: F401
    __all__.append('DySampleFPN')

if find_spec('mmseg') is not None:
    from .decode_heads import DySampleSegformerHead  # noqa: F401
    __all__.append('DySampleSegformerHead')
