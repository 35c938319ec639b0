# Copyright (c) mmdysample contributors. All rights reserved.
"""LDA-AQU: local deformable attention as an upsampler.

LDA-AQU treats upsampling as attention: every output pixel is a query,
made from a bilinear upsampling of the (LayerNorm-ed, projected) input,
and it attends over ``k_u x k_u`` keys and values read from the input at
points that a small convolution of the query moves away from a regular
window around it (deformable attention, each channel group with its own
points). The values are the raw input, so the output is a convex
combination of bilinearly interpolated input features, as in CARAFE, but
with content-dependent sampling points, as in DySample.

Paper: Du, Hu, Zhao, Jin, Ma. "LDA-AQU: Adaptive Query-guided Upsampling
via Local Deformable Attention", ACM MM 2024.
https://arxiv.org/abs/2411.19585
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import xavier_init
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int, check_odd


class ChannelLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of an ``(N, C, H, W)`` map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def window_offsets(kernel_size: int) -> Tensor:
    """The regular ``k x k`` window, ``(1, 2 * k * k, 1, 1)``.

    Channel ``2 * (a * k + b)`` holds the row offset ``a - k // 2`` and
    channel ``2 * (a * k + b) + 1`` the column offset ``b - k // 2``.
    """
    r = kernel_size // 2
    base = torch.arange(-r, r + 1, dtype=torch.float32)
    rows = base.repeat_interleave(kernel_size)
    cols = base.repeat(kernel_size)
    return torch.stack([rows, cols], dim=1).view(1, -1, 1, 1)


def deformable_gather(x: Tensor, positions: Tensor, out_size) -> Tensor:
    """Read ``x`` at ``k * k`` points per output pixel, bilinearly.

    ``positions`` are ``(row, col)`` pairs in output-grid pixels (as
    :func:`window_offsets`): output pixel ``(i, j)`` reads the input at
    ``(i + dr) * (H - 1) / (sH - 1)``, ``(j + dc) * (W - 1) / (sW - 1)``
    (the corners of both grids coincide, ``align_corners=True``), zero
    outside the map.

    Shapes: x ``(N, C, H, W)``, positions ``(N, 2 * k * k, sH, sW)`` ->
    ``(N, k * k, C, sH, sW)``.
    """
    n, c = x.shape[:2]
    out_h, out_w = out_size
    kk = positions.shape[1] // 2
    pos = positions.reshape(n, kk, 2, out_h, out_w)
    rows = torch.arange(out_h, dtype=pos.dtype, device=pos.device)
    cols = torch.arange(out_w, dtype=pos.dtype, device=pos.device)
    grid_y = (pos[:, :, 0] + rows.view(1, 1, out_h, 1)) * (
        2.0 / (out_h - 1)) - 1
    grid_x = (pos[:, :, 1] + cols.view(1, 1, 1, out_w)) * (
        2.0 / (out_w - 1)) - 1
    grid = torch.stack([grid_x, grid_y], dim=-1)  # (N, kk, sH, sW, 2)
    out = F.grid_sample(
        x,
        grid.reshape(n, kk * out_h, out_w, 2),
        mode='bilinear',
        padding_mode='zeros',
        align_corners=True)
    return out.reshape(n, c, kk, out_h, out_w).transpose(1, 2)


@MODELS.register_module('LDA-AQU')
class LDAAQU(nn.Module):
    """LDA-AQU, query-guided upsampling by local deformable attention.

    With ``D = C / reduction``, ``G = groups``, ``K = k_u**2``::

        z      = LayerNorm_C(x)
        q      = bilinear_s(proj_q(z))               # (N, D, sH, sW)
        p_g    = tanh(conv_offset(q_g)) * range + window   # per group g
        k_g    = read(proj_k(z)_g, p_g), v_g = read(x_g, p_g)   # K points
        attn   = softmax_K(q . (k + rpb) / sqrt(D / heads))      # per head
        out    = sum_K attn * v

    ``bilinear_s`` uses ``align_corners=True`` and ``read`` is
    :func:`deformable_gather` (points in output pixels, zero padding);
    ``conv_offset`` is a depth-wise ``3 x 3`` convolution, a LayerNorm, a
    GELU and a ``k_e x k_e`` convolution to ``2 K`` channels, shared by
    the groups. The last convolution starts at zero, so an untrained layer
    attends over the regular ``k_u x k_u`` window of the query.

    Parameters (``C = 256``, defaults): ``2 * 256 * 64`` projections,
    ``32 * 9`` depth-wise, LayerNorms ``2 * 32 + 2 * 256``, offset
    convolution ``18 * (32 * 9) + 18``, position bias ``9 * 64``: 39,410,
    as the authors' module.

    Shapes: ``(N, C, H, W) -> (N, C, sH, sW)``.

    Args:
        in_channels (int): Channels ``C``.
        scale_factor (int): Upsampling ratio ``s`` (at least 2).
            Defaults to 2.
        reduction (int): Channel reduction of queries and keys
            (``D = C / reduction``). Defaults to 4.
        num_heads (int): Attention heads. Defaults to 1.
        groups (int): Offset groups (each reads its own points).
            Defaults to 2.
        k_u (int): Attention window size (odd). Defaults to 3.
        k_e (int): Kernel of the offset convolution (odd). Defaults to 3.
        offset_range (float): Largest offset, in output pixels (the
            authors' ``range_factor``). Defaults to 11.
        rpb (bool): Add a learned relative position bias to the keys.
            Defaults to True.

    Example:
        >>> import torch
        >>> layer = LDAAQU(16)
        >>> layer(torch.rand(1, 16, 5, 7)).shape
        torch.Size([1, 16, 10, 14])
    """

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 reduction: int = 4,
                 num_heads: int = 1,
                 groups: int = 2,
                 k_u: int = 3,
                 k_e: int = 3,
                 offset_range: float = 11.,
                 rpb: bool = True) -> None:
        super().__init__()
        self.in_channels = check_int('in_channels', in_channels, 1)
        self.scale_factor = check_int('scale_factor', scale_factor, 2)
        self.reduction = check_int('reduction', reduction, 1)
        self.num_heads = check_int('num_heads', num_heads, 1)
        self.groups = check_int('groups', groups, 1)
        self.k_u = check_odd('k_u', k_u)
        self.k_e = check_odd('k_e', k_e)
        if isinstance(offset_range, bool) or not isinstance(
                offset_range, (int, float)) or not offset_range > 0:
            raise ValueError('offset_range must be a positive number, got '
                             f'{offset_range!r}')
        if not isinstance(rpb, bool):
            raise TypeError(f'rpb must be a bool, got {rpb!r}')
        self.offset_range = float(offset_range)
        self.rpb = rpb
        if in_channels % reduction:
            raise ValueError(f'in_channels ({in_channels}) must be divisible '
                             f'by reduction ({reduction})')
        dim = in_channels // reduction
        for name, value in (('num_heads', num_heads), ('groups', groups)):
            if dim % value or in_channels % value:
                raise ValueError(
                    f'{name} ({value}) must divide in_channels '
                    f'({in_channels}) and in_channels / reduction ({dim})')
        self.dim = dim
        self.head_scale = (dim // num_heads)**-0.5
        group_dim = dim // groups
        self.layer_norm = ChannelLayerNorm(in_channels)
        self.proj_q = nn.Conv2d(in_channels, dim, 1, bias=False)
        self.proj_k = nn.Conv2d(in_channels, dim, 1, bias=False)
        self.conv_offset = nn.Sequential(
            nn.Conv2d(
                group_dim, group_dim, 3, padding=1, groups=group_dim,
                bias=False), ChannelLayerNorm(group_dim), nn.GELU(),
            nn.Conv2d(group_dim, 2 * self.k_u**2, self.k_e,
                      padding=self.k_e // 2))
        if rpb:
            # The authors' name and shape: one bias per head, point and
            # key channel.
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(1, num_heads, 1, self.k_u**2, dim // num_heads))
        self.register_buffer(
            'window', window_offsets(self.k_u), persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform convolutions, LayerNorms 1 / 0, the last offset
        convolution zero and the position bias ~ truncated N(0, 0.02)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                xavier_init(m, distribution='uniform')
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)
        if self.rpb:
            nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def positions(self, q: Tensor) -> Tensor:
        """Sampling points ``(N * G, 2 * k_u**2, sH, sW)`` of each group, in
        output pixels relative to the query (window included)."""
        n, _, out_h, out_w = q.shape
        q = q.reshape(n * self.groups, self.dim // self.groups, out_h, out_w)
        offset = self.conv_offset(q).tanh() * self.offset_range
        return offset + self.window.to(offset)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample ``x`` ``(N, C, H, W)`` to ``(N, C, sH, sW)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'LDAAQU expects x of shape (N, {self.in_channels}, H, W), '
                f'got {tuple(x.shape)}')
        n, c, h, w = x.shape
        s, g, heads = self.scale_factor, self.groups, self.num_heads
        out_h, out_w = s * h, s * w
        kk, dim = self.k_u**2, self.dim
        z = self.layer_norm(x)
        q = F.interpolate(
            self.proj_q(z), (out_h, out_w),
            mode='bilinear',
            align_corners=True)
        pos = self.positions(q)
        keys = deformable_gather(
            self.proj_k(z).reshape(n * g, dim // g, h, w), pos, (out_h, out_w))
        values = deformable_gather(
            x.reshape(n * g, c // g, h, w), pos, (out_h, out_w))
        # (N*G, K, C/G, sH, sW) -> (N, heads, K, C/heads, sH, sW)
        keys = keys.reshape(n, g, kk, dim // g, out_h, out_w).transpose(1, 2)
        keys = keys.reshape(n, kk, heads, dim // heads, out_h,
                            out_w).transpose(1, 2)
        values = values.reshape(n, g, kk, c // g, out_h,
                                out_w).transpose(1, 2)
        values = values.reshape(n, kk, heads, c // heads, out_h,
                                out_w).transpose(1, 2)
        if self.rpb:
            bias = self.relative_position_bias_table.view(
                1, heads, kk, dim // heads, 1, 1)
            keys = keys + bias
        q = q.reshape(n, heads, 1, dim // heads, out_h,
                      out_w) * self.head_scale
        attn = (q * keys).sum(dim=3, keepdim=True).softmax(dim=2)
        # The weighted sum of the values one point at a time: a fused
        # multiply-add per point instead of a K-times-the-output product.
        out = values[:, :, 0] * attn[:, :, 0]
        for j in range(1, kk):
            out = out.addcmul_(values[:, :, j], attn[:, :, j])
        return out.reshape(n, c, out_h, out_w)  # from (N, heads, C/h, ...)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, scale_factor='
                f'{self.scale_factor}, reduction={self.reduction}, '
                f'num_heads={self.num_heads}, groups={self.groups}, '
                f'k_u={self.k_u}, k_e={self.k_e}, offset_range='
                f'{self.offset_range}, rpb={self.rpb}')
