# Copyright (c) mmdysample contributors. All rights reserved.
from .builder import build_upsampler, list_upsamplers
from .upsamplers import DYSAMPLE_PRESETS, DySample

__all__ = ['DySample', 'DYSAMPLE_PRESETS', 'build_upsampler', 'list_upsamplers']
