# Copyright (c) mmdysample contributors. All rights reserved.
"""A bare upsampler made drawable without a model.

:func:`image_feature` makes a stand-in input feature from an image, and
:func:`randomize_offsets` gives the layer random offset weights of a visible
length.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.upsamplers import DySample
from .common import ArrayLike, _as_numpy
from .geometry import sampling_positions

def image_feature(image: ArrayLike,
                  channels: int,
                  stride: int = 8,
                  seed: int = 0) -> Tensor:
    """A stand-in feature map of an image for a bare upsampler.

    The image's colour and grey-level gradients (Sobel), average-pooled by
    ``stride``, through a fixed random ``1x1`` projection to ``channels``
    channels: a map whose content, edges included, follows the image, so
    a layer's offsets vary with it.

    Args:
        image (Tensor | np.ndarray): ``(H, W, 3)`` RGB image, uint8.
        channels (int): Channels ``C`` of the feature.
        stride (int): Image pixels per feature pixel; the map has
            ``ceil(H / stride) x ceil(W / stride)`` pixels. Defaults to 8.
        seed (int): Seed of the projection. Defaults to 0.

    Returns:
        Tensor: ``(1, C, ceil(H / stride), ceil(W / stride))`` float32.

    Example:
        >>> import numpy as np
        >>> image_feature(np.zeros((30, 40, 3), np.uint8), 16, 8).shape
        torch.Size([1, 16, 4, 5])
    """
    if isinstance(channels, bool) or not isinstance(channels, int) \
            or channels < 1:
        raise ValueError(f'channels must be a positive int, got {channels!r}')
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f'stride must be a positive int, got {stride!r}')
    img = torch.as_tensor(_as_numpy(image)).float().div(255)
    img = img.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    gray = img.mean(1, keepdim=True)
    sobel = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]) / 4
    kernels = torch.stack([sobel, sobel.T]).unsqueeze(1)
    grad = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode='replicate'), kernels)
    base = torch.cat([img - 0.5, grad, grad.norm(dim=1, keepdim=True)], 1)
    size = (math.ceil(img.shape[2] / stride), math.ceil(img.shape[3] / stride))
    base = F.adaptive_avg_pool2d(base, size)
    base = (base - base.mean((2, 3), keepdim=True)) / (
        base.std((2, 3), keepdim=True) + 1e-6)
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(channels, base.shape[1], generator=gen)
    return torch.einsum('oc,nchw->nohw', proj, base) / math.sqrt(
        base.shape[1])


def randomize_offsets(layer: DySample,
                      feat: Tensor,
                      rms: float = 0.3,
                      seed: int = 0) -> float:
    """Random offset weights scaled to a visible offset length.

    Untrained offsets are noise: this only shows how the drawing reads. The
    offset (and dynamic scope) weights are drawn from ``N(0, 1)`` and the
    offset weights rescaled so that the learned offsets on ``feat`` have a
    root mean square length of ``rms`` input pixels (the initial DySample
    weights give offsets of about 0.001 pixels, too short to see).

    Args:
        layer (DySample): The layer, changed in place.
        feat (Tensor): An input ``(N, C, H, W)``.
        rms (float): Target root mean square offset length, input pixels.
            Defaults to 0.3.
        seed (int): Seed of the weights. Defaults to 0.

    Returns:
        float: The root mean square length reached.
    """
    if not rms > 0:
        raise ValueError(f'rms must be positive, got {rms!r}')
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = layer.offset.weight
        weight.copy_(torch.randn(weight.shape, generator=gen))
        layer.offset.bias.zero_()
        if layer.dyscope:
            layer.scope.weight.copy_(
                torch.randn(layer.scope.weight.shape, generator=gen))
        reached = 0.0
        # Offsets are linear in the weights except under hard_scope's tanh,
        # which a few rescaling rounds bring close enough.
        for _ in range(4):
            learned = sampling_positions(layer, feat) - sampling_positions(
                layer, feat, learned=False)
            reached = float(learned.norm(dim=-1).pow(2).mean().sqrt())
            if reached == 0 or abs(reached / rms - 1) < 1e-3:
                break
            weight.mul_(rms / reached)
    return reached
