# Copyright (c) mmdysample contributors. All rights reserved.
"""The upsampler family: DySample (the layer, its presets and the sampling
maths) and its peers in plain PyTorch (CARAFE's reassembly and
``CARAFEPack`` twin, the guided upsamplers of the paper's tables, and the
later FreqFusion and LDA-AQU)."""
from .a2u import A2U
from .carafe import CARAFEUnfold, carafe_reassemble
from .dysample import DYSAMPLE_PRESETS, DySample
from .fade import FADE
from .fast_triton import dysample_sample_triton
from .freqfusion import FreqFusion
from .indexnet import IndexNet
from .lda_aqu import LDAAQU
from .sampling import (dysample_sample, dysample_sample_reference,
                       initial_positions, reference_dysample_sample,
                       sampling_grid)
from .sapa import SAPA

__all__ = [
    'A2U', 'CARAFEUnfold', 'carafe_reassemble', 'DySample', 'DYSAMPLE_PRESETS',
    'dysample_sample', 'dysample_sample_reference', 'dysample_sample_triton',
    'FADE', 'FreqFusion', 'IndexNet', 'initial_positions', 'LDAAQU',
    'reference_dysample_sample', 'SAPA', 'sampling_grid'
]
