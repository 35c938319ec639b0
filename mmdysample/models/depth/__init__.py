# Copyright (c) mmdysample contributors. All rights reserved.
"""Monocular depth estimation on mmseg 1.x: DepthFormer's parts (the
paper's Table 9 host).

Importing this package needs mmseg; it registers in mmseg's ``MODELS``:

- :class:`DepthFormerSwin`: the encoder, mmseg's Swin Transformer beside a
  ResNet stem (five levels, the stem's first);
- :class:`HAHIHeteroNeck`: the neck, deformable self-attention over the
  Swin levels and cross-attention from the stem's level;
- :class:`SigLoss`: the scale-invariant log loss, finite on crops without
  valid ground truth.

The decoder, whose four x2 stages take ``upsample_cfg``, is
:class:`~mmdysample.models.decode_heads.DenseDepthHead`; mmseg's own
``DepthEstimator`` runs the whole model.
"""
from .depthformer_swin import DepthFormerSwin
from .hahi_neck import HAHIHeteroNeck, sine_position_embedding
from .sig_loss import SigLoss

__all__ = [
    'DepthFormerSwin', 'HAHIHeteroNeck', 'SigLoss', 'sine_position_embedding'
]
