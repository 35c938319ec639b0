# Copyright (c) mmdysample contributors. All rights reserved.
"""IndexNet's holistic index (HIN) as a guided x2 upsampler.

A small network reads the high-resolution guide and predicts one index
value per output pixel; the low-resolution map is upsampled by nearest
neighbour and multiplied by that index map (the decoder side of IndexNet,
"indexed upsampling"). The DySample paper uses the holistic, nonlinear
version with context ("HIN"), the default here.

Paper: Lu, Dai, Shen, Xu. "Indices Matter: Learning to Index for Deep Image
Matting", ICCV 2019. https://arxiv.org/abs/1908.00672
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import constant_init, kaiming_init
from mmengine.registry import MODELS
from torch import Tensor

from ..guide import GuidedUpsampler


@MODELS.register_module('IndexNet')
class IndexNet(GuidedUpsampler):
    """Holistic index network: ``out = index_map(guide) * nearest_x2(x)``.

    The index block (IndexNet's ``HolisticIndexBlock``) maps the guide to 4
    channels on the low-resolution grid with a stride-2 convolution, takes
    their sigmoid and pixel-shuffles them into one index channel at the
    guide's resolution, shared by all channels of ``x``:

    * ``use_nonlinear=True``: ``Conv(C_g -> 2 C_g, stride 2, no bias) ->
      BN -> ReLU6 -> Conv1x1(2 C_g -> 4, no bias)``;
    * ``use_nonlinear=False``: ``Conv(C_g -> 4, stride 2, no bias)``;
    * ``use_context=True``: the stride-2 convolution is ``4 x 4`` with
      padding 1 (each index sees a neighbourhood of its 2 x 2 cell);
      ``False``: ``2 x 2`` with no padding.

    The defaults are the paper's HIN: 2,100,224 parameters per stage at
    ``C = C_g = 256`` (``32 C**2 + 12 C``). The BatchNorm follows the
    module's mode: batch statistics in training, running ones in eval.

    Shapes: ``x`` ``(N, C, H, W)``, ``guide`` ``(N, C_g, 2H, 2W)`` ->
    ``(N, C, 2H, 2W)``.

    Args:
        in_channels (int): Channels ``C`` of the map to upsample.
        scale_factor (int): Upsampling ratio; IndexNet's index block is
            x2 only. Defaults to 2.
        guide_channels (int, optional): Channels ``C_g`` of the guide.
            Defaults to None: ``in_channels``.
        use_nonlinear (bool): Two convolutions with BN + ReLU6 between them
            instead of one linear convolution. Defaults to True.
        use_context (bool): ``4 x 4`` instead of ``2 x 2`` stride-2
            convolution. Defaults to True.

    Example:
        >>> import torch
        >>> layer = IndexNet(16)
        >>> x, guide = torch.rand(2, 16, 5, 7), torch.rand(2, 16, 10, 14)
        >>> layer(x, guide).shape
        torch.Size([2, 16, 10, 14])
        >>> layer.index_map(guide).shape
        torch.Size([2, 1, 10, 14])
    """

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 guide_channels: Optional[int] = None,
                 use_nonlinear: bool = True,
                 use_context: bool = True) -> None:
        super().__init__(in_channels, scale_factor, guide_channels)
        if self.scale_factor != 2:
            raise ValueError('IndexNet upsamples by 2 only (its index map '
                             'is a pixel shuffle of 4 channels), got '
                             f'scale_factor={scale_factor!r}')
        for name, value in (('use_nonlinear', use_nonlinear),
                            ('use_context', use_context)):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be a bool, got {value!r}')
        self.use_nonlinear = use_nonlinear
        self.use_context = use_context
        # Both variants give exactly H x W indices for a 2H x 2W guide.
        kernel_size, padding = (4, 1) if use_context else (2, 0)
        c = self.guide_channels
        # The authors' layout, so their HolisticIndexBlock keys
        # (indexnet.0.weight, ...) load.
        if use_nonlinear:
            self.indexnet = nn.Sequential(
                nn.Conv2d(c, 2 * c, kernel_size, 2, padding, bias=False),
                nn.BatchNorm2d(2 * c), nn.ReLU6(),
                nn.Conv2d(2 * c, 4, 1, bias=False))
        else:
            self.indexnet = nn.Sequential(
                nn.Conv2d(c, 4, kernel_size, 2, padding, bias=False))
        self.init_weights()

    def init_weights(self) -> None:
        """He-normal (fan-out) convolutions, BN ``(1, 0)``: the authors'
        ``_initialize_weights`` (``N(0, 2 / (k * k * out_channels))``)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                kaiming_init(m, mode='fan_out', distribution='normal')
            elif isinstance(m, nn.BatchNorm2d):
                constant_init(m, 1, bias=0)

    def index_map(self, guide: Tensor) -> Tensor:
        """The decoder index map, ``(N, C_g, 2H, 2W) -> (N, 1, 2H, 2W)``.

        Values in ``(0, 1)``: a sigmoid, not normalised over the 2 x 2 cell
        (IndexNet normalises only the encoder's pooling indices).
        """
        return F.pixel_shuffle(self.indexnet(guide).sigmoid(), 2)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Upsample ``x`` ``(N, C, H, W)`` to ``(N, C, 2H, 2W)``."""
        self.check_guide(x, guide)
        up = F.interpolate(x, scale_factor=2, mode='nearest')
        return self.index_map(guide) * up

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, use_nonlinear='
                f'{self.use_nonlinear}, use_context={self.use_context}')
