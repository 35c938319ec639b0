# Copyright (c) mmdysample contributors. All rights reserved.
"""SAPA-B: reassembly kernels from guide-to-input similarity.

SAPA (similarity-aware point affiliation) lets each high-resolution guide
pixel choose how much of each of the ``k x k`` low-resolution neighbours of
its source pixel it takes: the kernel is a softmax over the dot products of
a query embedding of the (normalised) guide pixel with key embeddings of
the (normalised) neighbours, and it reassembles the raw low-resolution map.
This is the base version used in the DySample paper (GroupNorm, 1x1
convolution embeddings), in plain PyTorch; the authors run the similarity
and the reassembly as custom CUDA ops.

Paper: Lu, Liu, Ye, Fu, Liu, Cao. "SAPA: Similarity-Aware Point
Affiliation for Feature Upsampling", NeurIPS 2022.
https://arxiv.org/abs/2209.12866
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int, check_odd
from ..guide import GuidedUpsampler
from .carafe import carafe_reassemble


def local_similarity(query: Tensor, key: Tensor, kernel_size: int,
                     scale_factor: int) -> Tensor:
    """Dot products of each query with the keys around its source pixel.

    ``out[n, dy * k + dx, Y, X] = sum_e query[n, e, Y, X] *
    key[n, e, Y // s + dy - r, X // s + dx - r]`` with ``r = k // 2``; a
    neighbour outside the map scores 0. No ``1 / sqrt(E)`` scaling: the
    authors' ``qk`` op and SAPA-B module apply the softmax to the raw dot
    products.

    Shapes: query ``(N, E, sH, sW)``, key ``(N, E, H, W)`` ->
    ``(N, k * k, sH, sW)``.

    Args:
        query (Tensor): High-resolution queries.
        key (Tensor): Low-resolution keys.
        kernel_size (int): Window size ``k`` (odd).
        scale_factor (int): Upsampling ratio ``s``.

    Returns:
        Tensor: The similarity logits, laid out like CARAFE's masks.

    Example:
        >>> import torch
        >>> local_similarity(torch.rand(2, 4, 10, 14), torch.rand(2, 4, 5, 7),
        ...                  kernel_size=5, scale_factor=2).shape
        torch.Size([2, 25, 10, 14])
    """
    n, e, h, w = key.shape
    k, s = kernel_size, scale_factor
    # (N, E * k * k, H * W): zero padding makes the outside keys (and so
    # their scores) exactly 0, as in the authors' CUDA op.
    windows = F.unfold(key, k, padding=k // 2).view(n, e, k * k, h, w)
    # Each low-res pixel's window serves its s x s queries: split the query
    # grid instead of repeating the windows s * s times.
    query = query.reshape(n, e, h, s, w, s)
    scores = torch.einsum('nejhw,nehawb->njhawb', windows, query)
    return scores.reshape(n, k * k, h * s, w * s)


# Only as 'SAPA-B': the NeurIPS paper's full SAPA (LayerNorm, linear
# embeddings of 64) is another layer.
@MODELS.register_module('SAPA-B')
class SAPA(GuidedUpsampler):
    """SAPA-B, similarity kernels between the guide and the input.

    With ``k = up_kernel``::

        q   = q(GroupNorm(guide))          # (N, E, sH, sW)
        kk  = k(GroupNorm(x))              # (N, E, H, W)
        w   = softmax_k*k(local_similarity(q, kk, k, s))
        out = carafe_reassemble(x, w, k, 1, s)   # the raw x

    Parameters (``C = C_g = 256``, defaults): ``2 * 2C + 2 * (32 C + 32) =
    17,472``. Sub-module names are the authors' (``norm_y``, ``norm_x``,
    ``q``, ``k``), so their state dicts load.

    Shapes: ``x`` ``(N, C, H, W)``, ``guide`` ``(N, C_g, sH, sW)`` ->
    ``(N, C, sH, sW)``.

    Args:
        in_channels (int): Channels ``C`` of the map to upsample.
        scale_factor (int): Upsampling ratio ``s``. Defaults to 2.
        guide_channels (int, optional): Channels ``C_g`` of the guide.
            Defaults to None: ``in_channels``.
        up_kernel (int): Size ``k`` of the low-resolution window each
            output pixel reassembles (odd). Defaults to 5.
        embedding_dim (int): Channels ``E`` of the queries and keys.
            Defaults to 32.
        norm_groups (int): Groups of both GroupNorms; must divide
            ``in_channels`` and ``guide_channels``. Defaults to 32.
        qkv_bias (bool): Give the query and key convolutions a bias.
            Defaults to True.

    Example:
        >>> import torch
        >>> layer = SAPA(16, scale_factor=2, norm_groups=8)
        >>> x, guide = torch.rand(1, 16, 5, 7), torch.rand(1, 16, 10, 14)
        >>> layer(x, guide).shape
        torch.Size([1, 16, 10, 14])
    """

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 guide_channels: Optional[int] = None,
                 up_kernel: int = 5,
                 embedding_dim: int = 32,
                 norm_groups: int = 32,
                 qkv_bias: bool = True) -> None:
        super().__init__(in_channels, scale_factor, guide_channels)
        self.up_kernel = check_odd('up_kernel', up_kernel)
        self.embedding_dim = check_int('embedding_dim', embedding_dim, 1)
        self.norm_groups = check_int('norm_groups', norm_groups, 1)
        for name, channels in (('in_channels', self.in_channels),
                               ('guide_channels', self.guide_channels)):
            if channels % self.norm_groups:
                raise ValueError(
                    f'{name} ({channels}) must be divisible by norm_groups '
                    f'({self.norm_groups})')
        if not isinstance(qkv_bias, bool):
            raise TypeError(f'qkv_bias must be a bool, got {qkv_bias!r}')
        self.qkv_bias = qkv_bias
        self.norm_y = nn.GroupNorm(self.norm_groups, self.guide_channels)
        self.norm_x = nn.GroupNorm(self.norm_groups, self.in_channels)
        self.q = nn.Conv2d(
            self.guide_channels, self.embedding_dim, 1, bias=qkv_bias)
        self.k = nn.Conv2d(
            self.in_channels, self.embedding_dim, 1, bias=qkv_bias)
        self.init_weights()

    def init_weights(self) -> None:
        """Query / key weights ~ N(0, 0.02), zero biases, GroupNorms (1, 0).

        As in the authors' code. Hosts call this after their own
        initialisation.
        """
        for conv in (self.q, self.k):
            nn.init.normal_(conv.weight, std=0.02)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        for norm in (self.norm_y, self.norm_x):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def kernels(self, x: Tensor, guide: Tensor) -> Tensor:
        """Reassembly kernels ``(N, k*k, sH, sW)``, each summing to one."""
        query = self.q(self.norm_y(guide))
        key = self.k(self.norm_x(x))
        scores = local_similarity(query, key, self.up_kernel,
                                  self.scale_factor)
        return scores.softmax(dim=1)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Upsample ``x`` ``(N, C, H, W)`` under ``guide`` ``(N, C_g, sH, sW)``
        to ``(N, C, sH, sW)``."""
        self.check_guide(x, guide)
        return carafe_reassemble(x, self.kernels(x, guide), self.up_kernel, 1,
                                 self.scale_factor)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, up_kernel={self.up_kernel}, '
                f'embedding_dim={self.embedding_dim}, norm_groups='
                f'{self.norm_groups}, qkv_bias={self.qkv_bias}')
