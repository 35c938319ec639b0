# Copyright (c) mmdysample contributors. All rights reserved.
"""The DySample family: the layer, its presets and the sampling maths."""
from .dysample import DYSAMPLE_PRESETS, DySample
from .fast_triton import dysample_sample_triton
from .sampling import (dysample_sample, dysample_sample_reference,
                       initial_positions, reference_dysample_sample,
                       sampling_grid)

__all__ = [
    'DySample', 'DYSAMPLE_PRESETS', 'dysample_sample',
    'dysample_sample_reference', 'dysample_sample_triton', 'initial_positions',
    'reference_dysample_sample', 'sampling_grid'
]
