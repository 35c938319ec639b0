# Copyright (c) mmdysample contributors. All rights reserved.
"""DepthFormer's encoder: a Swin Transformer beside a convolution stem."""
from typing import List, Optional

import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS
from torch import Tensor

from ..checks import check_int


@MODELS.register_module()
class DepthFormerSwin(SwinTransformer):
    """mmseg's Swin Transformer plus DepthFormer's convolution branch.

    `DepthFormer <https://arxiv.org/abs/2203.14211>`_ runs two encoders on
    the image: a Swin Transformer for long-range context and, for local
    detail, a convolution branch. In the authors' models (the
    Monocular-Depth-Estimation-Toolbox, ``num_stages=0``) that branch is a
    ResNet stem only: a 7x7 stride-2 convolution without bias, a norm
    (BatchNorm) and a ReLU, 64 channels at 1/2 (no max pool, no residual
    stage). Its map comes first among the outputs, then the Swin levels
    fine to coarse.

    Every argument of :class:`~mmseg.models.backbones.SwinTransformer`
    passes through (``embed_dims``, ``depths``, ``num_heads``,
    ``window_size``, ``drop_path_rate``, ``init_cfg``, ...); the stem's
    parameters are ``conv1.*`` and ``bn1.*`` (the toolbox's keys). A
    ``Pretrained`` ``init_cfg`` loads Swin weights as mmseg's backbone does,
    and leaves the stem at PyTorch's initialisation, as the toolbox trains
    it from scratch.

    Sizes: an ``H x W`` input gives ``ceil(H / 2)`` rows at the stem and
    ``ceil(H / 2**(i + 2))`` at Swin level ``i`` (Swin pads its patch
    embedding and merges, so any size works).

    Shapes: ``(N, in_channels, H, W)`` -> ``[(N, conv_stem_channels,
    H/2, W/2), (N, C, H/4, W/4), (N, 2C, H/8, W/8), (N, 4C, H/16, W/16),
    (N, 8C, H/32, W/32)]`` with ``C = embed_dims`` (Swin-T: 64, 96, 192,
    384, 768 channels).

    Args:
        conv_stem_channels (int): Width of the convolution stem. Defaults
            to 64.
        conv_cfg (dict, optional): Config of the stem's convolution.
            Defaults to None: ``Conv2d``.
        conv_norm_cfg (dict): Config of the stem's norm (the toolbox's
            name). Defaults to ``dict(type='BN', requires_grad=True)``.
        **kwargs: Arguments of ``SwinTransformer``; its defaults are Swin-T
            (``embed_dims=96``, ``depths=(2, 2, 6, 2)``, ``num_heads=(3, 6,
            12, 24)``, ``window_size=7``), with ``in_channels`` (3) read by
            the stem too.

    Raises:
        ValueError: ``conv_stem_channels`` is not a positive integer.

    Example:
        >>> import torch
        >>> backbone = DepthFormerSwin(
        ...     embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8),
        ...     window_size=4, conv_stem_channels=8)
        >>> [tuple(f.shape) for f in backbone(torch.rand(1, 3, 45, 61))]
        ... # doctest: +NORMALIZE_WHITESPACE
        [(1, 8, 23, 31), (1, 16, 12, 16), (1, 32, 6, 8), (1, 64, 3, 4),
         (1, 128, 2, 2)]
    """

    def __init__(self,
                 conv_stem_channels: int = 64,
                 conv_cfg: Optional[dict] = None,
                 conv_norm_cfg: dict = dict(type='BN', requires_grad=True),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.conv_stem_channels = check_int('conv_stem_channels',
                                            conv_stem_channels, 1)
        in_channels = kwargs.get('in_channels', 3)
        self.conv1 = build_conv_layer(
            conv_cfg,
            in_channels,
            self.conv_stem_channels,
            kernel_size=7,
            stride=2,
            padding=3,
            bias=False)
        self.norm_stem_name, norm = build_norm_layer(
            conv_norm_cfg, self.conv_stem_channels, postfix=1)
        self.add_module(self.norm_stem_name, norm)
        self.relu = nn.ReLU(inplace=True)

    def train(self, mode: bool = True) -> 'DepthFormerSwin':
        """Train / eval mode, keeping the frozen stages frozen; returns the
        module (mmseg's ``SwinTransformer.train`` returns None, which
        breaks ``model = DepthFormerSwin(...).eval()``)."""
        super().train(mode)
        return self

    @property
    def out_channels(self) -> List[int]:
        """Channels of the outputs: the stem's, then the Swin levels'."""
        return [self.conv_stem_channels
                ] + [self.num_features[i] for i in self.out_indices]

    def conv_stem(self, x: Tensor) -> Tensor:
        """The convolution branch: ``(N, C_in, H, W) -> (N, C_s, H/2, W/2)``.
        """
        norm = getattr(self, self.norm_stem_name)
        return self.relu(norm(self.conv1(x)))

    def forward(self, x: Tensor) -> List[Tensor]:
        """The stem's map, then Swin's levels fine to coarse."""
        return [self.conv_stem(x)] + list(super().forward(x))
