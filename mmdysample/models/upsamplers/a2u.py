# Copyright (c) mmdysample contributors. All rights reserved.
"""A2U, affinity-aware upsampling (dynamic, channel-shared: "dynamic-cs").

A2U predicts CARAFE kernels from a low-rank bilinear model of the guide's
local affinity: two per-sample 6 x 6 filters, shared across channels and
predicted from the guide's 6 x 6 average-pooled map, are correlated with
every channel of the guide (stride 2); after GroupNorm + LeakyReLU their
channel-wise product, summed over channels, gives one affinity map on the
low-resolution grid. A 36-vector from the guide's global average scales it
into ``3 x 3`` kernels for each of the 2 x 2 output pixels of a low-res
pixel, normalised by ``softmax(sigmoid(.))``, which reassemble the input.

Paper: Dai, Lu, Shen. "Learning Affinity-Aware Upsampling for Deep Image
Matting", CVPR 2021. https://arxiv.org/abs/2011.14288
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import constant_init, xavier_init
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int
from ..guide import GuidedUpsampler
from .carafe import carafe_reassemble
from .sampling import is_eager


def adaptive_avg_pool2d(x: Tensor, output_size: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)`` that exports with dynamic
    sizes.

    The TorchScript ONNX exporter refuses ``F.adaptive_avg_pool2d(x, k)``
    with ``k > 1`` when the input size is dynamic ("input size not
    accessible"). PyTorch's bins are rows ``floor(i * H / k)``
    to ``ceil((i + 1) * H / k)`` (exclusive), overlapping when ``H`` is not
    a multiple of ``k`` and never empty; here they are rows of a ``(k, H)``
    averaging matrix built from the traced size, applied by ``matmul``
    (no cumulative sums, so no cancellation in float32).

    Shapes: ``(N, C, H, W) -> (N, C, k, k)``.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 7, 4)
        >>> torch.allclose(adaptive_avg_pool2d(x, 6),
        ...                F.adaptive_avg_pool2d(x, 6))
        True
    """
    h, w = x.shape[-2:]
    rows = _pooling_matrix(h, output_size, x)  # (k, H)
    cols = _pooling_matrix(w, output_size, x)  # (k, W)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


def _pooling_matrix(size, bins: int, like: Tensor) -> Tensor:
    """``(bins, size)``: row ``i`` averages PyTorch's adaptive bin ``i``."""
    pos = torch.arange(size, device=like.device)
    i = torch.arange(bins, device=like.device)
    # Non-negative integers throughout: floor and ceil by integer division.
    start = torch.div(i * size, bins, rounding_mode='floor')
    end = torch.div((i + 1) * size + bins - 1, bins, rounding_mode='floor')
    inside = (pos[None] >= start[:, None]) & (pos[None] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def correlate_shared(x: Tensor, filters: Tensor) -> Tensor:
    """Every channel of ``x`` correlated with each of its sample's filters,
    stride 2, zero padding ``(k - 1) // 2`` (``F.conv2d``'s cross-
    correlation, one filter shared by all channels of a sample).

    One grouped convolution (``groups = N``), for eager mode.
    :func:`correlate_by_taps` computes the same for traced graphs.

    Shapes: ``x`` ``(N, C, 2H, 2W)``, ``filters`` ``(N, F, k, k)`` ->
    ``(N, F, C, H, W)`` (``k`` even or odd).

    Example:
        >>> import torch
        >>> x, filters = torch.rand(2, 3, 10, 14), torch.rand(2, 2, 6, 6)
        >>> out = correlate_shared(x, filters)
        >>> out.shape
        torch.Size([2, 2, 3, 5, 7])
        >>> torch.allclose(out, correlate_by_taps(x, filters), atol=1e-5)
        True
    """
    n, f, k = filters.shape[0], filters.shape[1], filters.shape[-1]
    c = x.shape[1]
    out = F.conv2d(
        x.transpose(0, 1),  # (C, N, 2H, 2W): the samples become groups
        filters.reshape(n * f, 1, k, k),
        stride=2,
        padding=(k - 1) // 2,
        groups=n)  # (C, N * F, H, W)
    return out.reshape(c, n, f, *out.shape[-2:]).permute(1, 2, 0, 3, 4)


def correlate_by_taps(x: Tensor, filters: Tensor) -> Tensor:
    """:func:`correlate_shared` as a sum of ``k * k`` strided slices.

    ONNX stores a convolution's groups as a constant, so
    :func:`correlate_shared` would fix an exported graph's batch size; this
    formulation keeps every size dynamic (slower in eager mode).

    Shapes: ``x`` ``(N, C, 2H, 2W)``, ``filters`` ``(N, F, k, k)`` ->
    ``(N, F, C, H, W)``.
    """
    k = filters.shape[-1]
    pad = (k - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad))[:, None]  # (N, 1, C, ., .)
    # Output row y reads padded row 2y + a with tap a, so tap a's H rows are
    # a, a + 2, ..., a + 2H - 2, which end 2 * pad + 1 - a rows before the
    # 2H + 2 * pad padded rows do: static slice bounds.
    out = 0
    for a in range(k):
        rows = slice(a, a - 2 * pad - 1 or None, 2)
        for b in range(k):
            cols = slice(b, b - 2 * pad - 1 or None, 2)
            tap = filters[:, :, a, b, None, None, None]
            out = out + tap * padded[:, :, :, rows, cols]
    return out


@MODELS.register_module('A2U')
class A2U(GuidedUpsampler):
    """A2U (dynamic-cs): ``3 x 3`` reassembly kernels from the guide's
    affinity.

    With ``g`` the guide (``C_g`` channels, ``2H x 2W``), ``*`` a stride-2
    correlation with zero padding 2 applied to each channel alone::

        p    = conv_p(mean_hw(g))                    # (N, 36), bias
        u, v = conv_u(pool6(g)), conv_v(pool6(g))    # (N, 6, 6) each, bias
        a    = sum_c LReLU(GN(u * g)) LReLU(GN(v * g)) / sqrt(C_g)  # (N, H, W)
        w    = softmax_9(sigmoid(pixel_shuffle(p a, 2)))  # (N, 9, 2H, 2W)
        out  = carafe_reassemble(x, w, 3, 1, 2)

    (``pool6``: adaptive average pooling to 6 x 6; GroupNorm with
    ``norm_groups`` groups and affine weights, LeakyReLU slope 0.01.)
    Only the guide makes the kernels; ``x`` is only reassembled, zero
    padded at its borders.

    Parameters: ``42 C_g + 38``, i.e. 10,790 per stage at ``C_g = 256``
    (the authors' ``InterChannelUp``). The paper's detection column, 38.9K
    for 4 stages (29.2K for 3), is 9,728 per stage ``= 38 C_g``: the
    weights of the three convolutions only. Ours is 1,062 more per stage:
    their 38 biases and the two GroupNorms' ``4 C_g`` affine parameters.

    Shapes: ``x`` ``(N, C, H, W)``, ``guide`` ``(N, C_g, 2H, 2W)`` ->
    ``(N, C, 2H, 2W)``.

    Args:
        in_channels (int): Channels ``C`` of the map to upsample.
        scale_factor (int): Upsampling ratio; A2U's kernels are x2 only.
            Defaults to 2.
        guide_channels (int, optional): Channels ``C_g`` of the guide,
            divisible by ``norm_groups``. Defaults to None: ``in_channels``.
        norm_groups (int): Groups of the two GroupNorms. Defaults to 32.

    Example:
        >>> import torch
        >>> layer = A2U(32)
        >>> x, guide = torch.rand(2, 32, 5, 7), torch.rand(2, 32, 10, 14)
        >>> layer(x, guide).shape
        torch.Size([2, 32, 10, 14])
        >>> layer.kernels(guide).sum(1).allclose(torch.ones(2, 10, 14))
        True
    """

    #: Reassembly kernel size (the authors' ``up_kernel_size``).
    up_kernel = 3
    #: Size of the per-sample filters (the authors' ``encode_kernel_size``).
    filter_size = 6

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 guide_channels: Optional[int] = None,
                 norm_groups: int = 32) -> None:
        super().__init__(in_channels, scale_factor, guide_channels)
        if self.scale_factor != 2:
            raise ValueError('A2U upsamples by 2 only (its kernels are a '
                             'pixel shuffle by 2 of the low-res affinity), '
                             f'got scale_factor={scale_factor!r}')
        self.norm_groups = check_int('norm_groups', norm_groups, 1)
        c = self.guide_channels
        if c % self.norm_groups:
            raise ValueError(
                f'guide_channels ({c}) must be divisible by norm_groups '
                f'({self.norm_groups}) for the GroupNorms; pass e.g. '
                'norm_groups=1')
        k, s = self.up_kernel, self.scale_factor
        self.conv_p = nn.Conv2d(c, k * k * s * s, 1)
        self.conv_u = nn.Conv2d(c, 1, 1)
        self.conv_v = nn.Conv2d(c, 1, 1)
        self.norm_u = nn.GroupNorm(self.norm_groups, c)
        self.norm_v = nn.GroupNorm(self.norm_groups, c)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-normal convolutions (gain of LeakyReLU(0.01)), zero biases,
        GroupNorm ``(1, 0)``: the A2U authors' ``_initialize_weights``
        with their default config (``weight_init='xavier_normal'``)."""
        gain = nn.init.calculate_gain('leaky_relu', 0.01)
        for m in (self.conv_p, self.conv_u, self.conv_v):
            xavier_init(m, gain=gain, bias=0, distribution='normal')
        for m in (self.norm_u, self.norm_v):
            constant_init(m, 1, bias=0)

    def kernels(self, guide: Tensor) -> Tensor:
        """Reassembly kernels ``(N, C_g, 2H, 2W) -> (N, 9, 2H, 2W)``, each
        summing to one over its 9 taps."""
        c = self.guide_channels
        p = self.conv_p(guide.mean((2, 3), keepdim=True))  # (N, 36, 1, 1)
        pooled = adaptive_avg_pool2d(guide, self.filter_size)
        filters = torch.cat([self.conv_u(pooled), self.conv_v(pooled)], 1)
        # (N, 2, C, H, W): the grouped convolution is ~10x faster in eager
        # mode; the sum of slices keeps a graph's batch size dynamic (and
        # takes an empty batch: zero groups is an error).
        fast = is_eager() and guide.shape[0] > 0
        correlate = correlate_shared if fast else correlate_by_taps
        u, v = correlate(guide, filters).unbind(1)
        u = F.leaky_relu(self.norm_u(u), 0.01)
        v = F.leaky_relu(self.norm_v(v), 0.01)
        affinity = (u * v).sum(1, keepdim=True) / math.sqrt(c)
        logits = F.pixel_shuffle(p * affinity, self.scale_factor)
        return logits.sigmoid().softmax(1)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Upsample ``x`` ``(N, C, H, W)`` to ``(N, C, 2H, 2W)``."""
        self.check_guide(x, guide)
        return carafe_reassemble(x, self.kernels(guide), self.up_kernel, 1,
                                 self.scale_factor)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, norm_groups={self.norm_groups}'
