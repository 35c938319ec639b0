# Copyright (c) mmdysample contributors. All rights reserved.
"""Aligning an upsampled map with the finer level it is added to."""
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor


def fit_to_size(x: Tensor,
                size: Sequence[int],
                mode: str = 'bilinear',
                align_corners: bool = False) -> Tensor:
    """Make an upsampled map ``x`` the spatial ``size`` of a finer level.

    A ``2x`` upsampler doubles the coarse map, but a lateral of odd size
    ``h`` sits under a coarse map of ``ceil(h / 2)`` pixels, so the doubled
    map has one row (or column) too many. Coarse pixel ``j`` stands for fine
    pixels ``2j`` and ``2j + 1``; the last one of an odd-sized lateral stands
    for fine pixel ``h - 1`` and the padding row ``h`` below (right of) the
    edge. Cropping that surplus row keeps every pixel centre where it was
    (``'same'`` alignment, and the pixels mmdet's nearest
    ``F.interpolate(size=...)`` picks too). Any other
    mismatch (the map smaller, or larger by two or more, e.g. a transposed
    convolution with custom padding or a backbone whose levels are not 2x
    apart) has no such pixel correspondence, so ``x`` is resized (by default
    bilinearly with ``align_corners=False``: map extents matched). Used by
    both the FPN neck and the SegFormer head.

    Shapes: ``(N, C, H', W') -> (N, C, *size)``.

    Args:
        x (Tensor): The upsampled map, ``(N, C, H', W')``.
        size (Sequence[int]): The target ``(H, W)``.
        mode (str): Interpolation mode of the fallback resize.
            Defaults to ``'bilinear'``.
        align_corners (bool): ``align_corners`` of the fallback resize, for
            the linear modes. Defaults to False.

    Returns:
        Tensor: ``x`` itself when it already has ``size``, else a crop or a
        resized copy.

    Example:
        >>> import torch
        >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
        >>> fit_to_size(x, (3, 3))[0, 0]
        tensor([[ 0.,  1.,  2.],
                [ 4.,  5.,  6.],
                [ 8.,  9., 10.]])
        >>> fit_to_size(x, (7, 9)).shape
        torch.Size([1, 1, 7, 9])
    """
    height, width = int(size[0]), int(size[1])
    extra_h = x.shape[-2] - height
    extra_w = x.shape[-1] - width
    if extra_h == 0 and extra_w == 0:
        return x
    if extra_h in (0, 1) and extra_w in (0, 1):
        return x[..., :height, :width]
    linear = mode in ('linear', 'bilinear', 'bicubic', 'trilinear')
    return F.interpolate(
        x,
        size=(height, width),
        mode=mode,
        align_corners=align_corners if linear else None)
