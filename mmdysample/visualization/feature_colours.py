# Copyright (c) mmdysample contributors. All rights reserved.
"""Colouring feature maps with one shared mapping (PCA or channel mean)."""
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

FEATURE_MODES = ('pca', 'mean')


def feature_to_rgb(feats: Sequence[Tensor],
                   mode: str = 'pca') -> List[np.ndarray]:
    """Colour feature maps with one shared mapping.

    The mapping is fitted on ``feats[0]`` (the input of the upsampler) and
    applied to all of them, so equal features get equal colours in every
    map.

    Args:
        feats (Sequence[Tensor]): Maps ``(C, H_k, W_k)`` with one ``C``.
        mode (str): ``'pca'`` maps the first three principal components to
            red, green and blue; ``'mean'`` colours the channel mean with the
            ``viridis`` colormap. Each is stretched between the 1st and 99th
            percentile of ``feats[0]``. Defaults to ``'pca'``.

    Returns:
        list[np.ndarray]: ``(H_k, W_k, 3)`` float arrays in ``[0, 1]``.

    Example:
        >>> import torch
        >>> rgb = feature_to_rgb([torch.rand(8, 4, 5), torch.rand(8, 8, 10)])
        >>> [x.shape for x in rgb]
        [(4, 5, 3), (8, 10, 3)]
    """
    if mode not in FEATURE_MODES:
        raise ValueError(f'mode must be one of {FEATURE_MODES}, got {mode!r}')
    if not feats:
        raise ValueError('feats is empty')
    channels = {f.shape[0] for f in feats}
    if len(channels) != 1 or any(f.dim() != 3 for f in feats):
        raise ValueError('feats must be (C, H, W) maps with one C, got '
                         f'shapes {[tuple(f.shape) for f in feats]}')
    flats = [f.detach().double().flatten(1).T for f in feats]  # (HW, C)
    ref = flats[0]
    if mode == 'pca':
        mean = ref.mean(0, keepdim=True)
        cov = (ref - mean).T @ (ref - mean) / max(1, ref.shape[0] - 1)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        basis = vecs.flip(1)[:, :3]
        # Eigenvectors have no sign; make each one's largest entry positive
        # so the colours are reproducible.
        signs = torch.sign(basis.gather(0, basis.abs().argmax(0, True)))
        basis = basis * torch.where(signs == 0, 1.0, signs)
        if basis.shape[1] < 3:  # fewer than 3 channels
            basis = F.pad(basis, (0, 3 - basis.shape[1]))
        projected = [(x - mean) @ basis for x in flats]
    else:
        projected = [x.mean(1, keepdim=True) for x in flats]
    lo = torch.quantile(projected[0], 0.01, dim=0)
    hi = torch.quantile(projected[0], 0.99, dim=0)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    out = []
    for p, f in zip(projected, feats):
        v = ((p - lo) / span).clamp(0, 1).numpy()
        if mode == 'mean':
            from matplotlib import colormaps
            v = colormaps['viridis'](v[:, 0])[:, :3]
        out.append(v.reshape(f.shape[1], f.shape[2], 3))
    return out
