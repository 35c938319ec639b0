# Copyright (c) mmdysample contributors. All rights reserved.
"""Where DySample samples: absolute sampling positions from its offsets.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085 (Fig. 7, Sec. 3.3).

Every output pixel ``(i * s + si, j * s + sj)`` of group ``gi`` reads the
input at ``x = j + 0.5 + offset_x``, ``y = i + 0.5 + offset_y`` in *input
pixels*, a coordinate system where input pixel ``k`` covers ``[k, k + 1]``
(see :meth:`~mmdysample.DySample.sampling_offsets`). With zero learned offsets
(bilinear initialisation) these are the centres of the output pixels,
``(j * s + sj + 0.5) / s``. A feature map of ``h x w`` pixels computed from an
``H x W`` network input has a stride of ``H / h`` by ``W / w`` image pixels,
so ``position * stride`` places a sampling point on the image.
"""
import torch
from torch import Tensor

from ..models.upsamplers import DySample

def positions_from_offsets(offsets: Tensor, scale_factor: int,
                           groups: int) -> Tensor:
    """Absolute sampling positions from DySample offsets.

    Args:
        offsets (Tensor): ``(N, 2 * g * s * s, H, W)`` offsets in input
            pixels from the centre of each input pixel, initial positions
            included, laid out as ``(xy, group, sub_row, sub_col)``.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Number of groups ``g``.

    Returns:
        Tensor: ``(N, g, s * H, s * W, 2)`` float64 ``(x, y)`` positions in
        input pixels (pixel ``k`` covers ``[k, k + 1]``); entry
        ``[n, gi, i * s + si, j * s + sj]`` is where output pixel
        ``(i * s + si, j * s + sj)`` of group ``gi`` samples.

    Example:
        >>> import torch
        >>> pos = positions_from_offsets(torch.zeros(1, 8, 1, 1), 2, 1)
        >>> pos[0, 0, :, :, 0]  # zero offsets: every point at the centre
        tensor([[0.5000, 0.5000],
                [0.5000, 0.5000]], dtype=torch.float64)
    """
    n, c, h, w = offsets.shape
    s, g = scale_factor, groups
    if c != 2 * g * s * s:
        raise ValueError(f'offsets have {c} channels, expected 2 * groups * '
                         f'scale_factor**2 = {2 * g * s * s} for '
                         f'groups={g}, scale_factor={s}')
    off = offsets.detach().double().reshape(n, 2, g, s, s, h, w)
    centres_x = torch.arange(w, dtype=torch.float64,
                             device=off.device) + 0.5
    centres_y = torch.arange(h, dtype=torch.float64,
                             device=off.device) + 0.5
    pos_x = off[:, 0] + centres_x.view(1, 1, 1, 1, 1, w)
    pos_y = off[:, 1] + centres_y.view(1, 1, 1, 1, h, 1)
    pos = torch.stack([pos_x, pos_y], dim=-1)  # (N, g, s, s, H, W, 2)
    pos = pos.permute(0, 1, 4, 2, 5, 3, 6)  # (N, g, H, s, W, s, 2)
    return pos.reshape(n, g, h * s, w * s, 2)


def sampling_positions(layer: DySample,
                       feat: Tensor,
                       learned: bool = True) -> Tensor:
    """Where ``layer`` samples ``feat``, in input pixels.

    Args:
        layer (DySample): The upsampler.
        feat (Tensor): Its input, ``(N, C, H, W)``.
        learned (bool): The positions the layer samples at (initial positions
            plus the offsets it predicts from ``feat``); False gives the
            initial positions alone (for ``init_mode='bilinear'`` the
            output pixel centres ``(j * s + sj + 0.5) / s``).
            Defaults to True.

    Returns:
        Tensor: ``(N, g, s * H, s * W, 2)`` float64 ``(x, y)`` positions,
        see :func:`positions_from_offsets`. ``grid_sample`` clamps positions
        outside ``[0.5, W - 0.5]`` (``[0.5, H - 0.5]``) to the border pixel
        centres; the positions returned are not clamped.

    Example:
        >>> import torch
        >>> from mmdysample import DySample
        >>> layer = DySample(8, scale_factor=2, groups=2)
        >>> sampling_positions(layer, torch.rand(1, 8, 3, 5)).shape
        torch.Size([1, 2, 6, 10, 2])
        >>> init = sampling_positions(layer, torch.rand(1, 8, 3, 5), False)
        >>> init[0, 0, 0, :4, 0]
        tensor([0.2500, 0.7500, 1.2500, 1.7500], dtype=torch.float64)
    """
    if learned:
        with torch.no_grad():
            offsets = layer.sampling_offsets(feat)
    else:
        n, _, h, w = feat.shape
        offsets = layer.init_pos.expand(n, -1, h, w)
    return positions_from_offsets(offsets, layer.scale_factor, layer.groups)
