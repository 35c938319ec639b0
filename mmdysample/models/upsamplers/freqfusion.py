# Copyright (c) mmdysample contributors. All rights reserved.
"""FreqFusion: adaptive low-pass upsampling, high-pass guide, resampling.

FreqFusion fuses a coarse map into the finer one of an encoder-decoder skip
with three parts, all predicted from channel-compressed copies of both maps:

- an adaptive *low-pass* filter (ALPF): CARAFE-style ``5 x 5`` kernels that
  upsample the coarse map while smoothing it inside objects;
- an adaptive *high-pass* filter (AHPF): ``3 x 3`` kernels whose residual
  ``guide - lowpass(guide)`` restores the guide's boundary detail;
- an offset generator that resamples the upsampled map, moving features
  from the inside of objects towards their inconsistent boundaries (a
  DySample-style sampler steered by local cosine similarities).

The kernels are predicted "semi-conv" style and refined once: the high-pass
kernels of the compressed guide first sharpen that guide, the low-pass
kernels of the sharpened guide reassemble the coarse logits, and the
results are added. Every kernel is a softmax over its window multiplied by
a Hamming window and renormalised.

In the guide protocol of this package the layer returns
``resample(lowpass_up(x)) + highpass(guide)``; hosts that add the guide (an
FPN's top-down sum) then compute the authors' fused map
``guide + highpass(guide) + resample(lowpass_up(x))`` exactly. Reassembly
pads with zeros at the borders (mmcv's CUDA ``carafe`` op, used by the
authors' detection code), in plain PyTorch on any device.

Paper: Chen et al. "Frequency-aware Feature Fusion for Dense Image
Prediction", TPAMI 2024. https://arxiv.org/abs/2408.12879
"""
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import normal_init, xavier_init
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int, check_odd
from ..guide import GuidedUpsampler
from .carafe import carafe_reassemble
from .sampling import (coordinate_dtype, initial_positions, pixel_unshuffle,
                       sampling_grid)


def hamming_window(kernel_size: int) -> Tensor:
    """The ``k x k`` outer product of two Hamming windows, ``(k * k,)``.

    Example:
        >>> hamming_window(3).view(3, 3)[1]
        tensor([0.0800, 1.0000, 0.0800])
    """
    window = np.hamming(kernel_size)
    return torch.from_numpy(np.outer(window, window)).float().flatten()


def normalize_kernels(logits: Tensor, window: Tensor) -> Tensor:
    """Softmax each ``k x k`` kernel, weight it by ``window`` and renormalise.

    Shapes: logits ``(N, k * k, H, W)``, window ``(k * k,)`` ->
    ``(N, k * k, H, W)`` whose kernels sum to one.
    """
    kernels = logits.softmax(dim=1) * window.to(logits).view(1, -1, 1, 1)
    return kernels / kernels.sum(dim=1, keepdim=True)


def local_cosine_similarity(x: Tensor, window: int = 3,
                            dilation: int = 2) -> Tensor:
    """Cosine similarity of each pixel with its dilated neighbours.

    ``out[n, j, y, x]`` is the cosine similarity of the feature vector at
    ``(y, x)`` with the one at ``(y + dilation * (dy - r), x + dilation *
    (dx - r))``, ``j`` running over the ``window**2 - 1`` neighbours
    ``(dy, dx)`` other than the centre in row-major order; a neighbour
    outside the map is a zero vector and scores 0.

    Shapes: ``(N, C, H, W) -> (N, window**2 - 1, H, W)``.
    """
    h, w = x.shape[-2:]
    r = (window // 2) * dilation
    # Normalise once (as F.cosine_similarity does, norms clamped at 1e-8),
    # then one shifted product per neighbour: no k * k window copy.
    unit = x / x.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-8)
    padded = F.pad(unit, (r, r, r, r))
    sims = []
    for a in range(window):
        for b in range(window):
            if a == b == window // 2:
                continue
            neighbour = padded[..., a * dilation:a * dilation + h,
                               b * dilation:b * dilation + w]
            sims.append((unit * neighbour).sum(1))
    return torch.stack(sims, dim=1)


class FreqFusionResampler(nn.Module):
    """FreqFusion's offset generator and sampler.

    From the GroupNorm-ed compressed maps, each concatenated with its
    :func:`local_cosine_similarity` (3 x 3, dilation 2), it predicts
    DySample-layout offsets (``2 * g * s * s`` channels, in low-resolution
    pixels) as ``(offset(lr) + unshuffle(hr_offset(hr))) *
    sigmoid(direct_scale(lr) + unshuffle(hr_direct_scale(hr))) + init`` and
    samples the already upsampled map at those points (bilinear, border
    padding), one offset field per channel group.

    Shapes: ``hr`` ``(N, E, sH, sW)``, ``lr`` ``(N, E, H, W)``, ``feats``
    ``(N, C, sH, sW)`` -> ``(N, C, sH, sW)``.

    Args:
        channels (int): Channels ``E`` of the compressed maps.
        scale_factor (int): Upsampling ratio ``s``.
        groups (int): Offset groups ``g``. Defaults to 4.
        kernel_size (int): Kernel of the four offset convolutions (odd).
            Defaults to 3.
        norm (bool): GroupNorm the compressed maps first, in ``E // 8``
            groups (at least one). Defaults to True.
    """

    window = 3
    dilation = 2

    def __init__(self,
                 channels: int,
                 scale_factor: int,
                 groups: int = 4,
                 kernel_size: int = 3,
                 norm: bool = True) -> None:
        super().__init__()
        self.channels = check_int('channels', channels, 1)
        self.scale_factor = check_int('scale_factor', scale_factor, 2)
        self.groups = check_int('groups', groups, 1)
        kernel_size = check_odd('kernel_size', kernel_size)
        if not isinstance(norm, bool):
            raise TypeError(f'norm must be a bool, got {norm!r}')
        # The authors' E // 8 groups (at least one), which must divide E.
        norm_groups = max(1, channels // 8)
        if norm and channels % norm_groups:
            raise ValueError(
                f'norm=True makes channels // 8 = {norm_groups} GroupNorm '
                f'groups, which must divide channels ({channels}); choose '
                'other compressed channels or norm=False')
        s, g = self.scale_factor, self.groups
        in_ch = channels + self.window**2 - 1

        def conv(out_ch):
            return nn.Conv2d(
                in_ch, out_ch, kernel_size, padding=kernel_size // 2)

        self.offset = conv(2 * g * s * s)
        self.direct_scale = conv(2 * g * s * s)
        self.hr_offset = conv(2 * g)
        self.hr_direct_scale = conv(2 * g)
        if norm:
            self.norm_hr = nn.GroupNorm(norm_groups, channels)
            self.norm_lr = nn.GroupNorm(norm_groups, channels)
        else:
            self.norm_hr = nn.Identity()
            self.norm_lr = nn.Identity()

    def offsets(self, hr: Tensor, lr: Tensor) -> Tensor:
        """Offsets ``(N, 2 * g * s * s, H, W)``, initial positions included.
        """
        s = self.scale_factor
        hr = self.norm_hr(hr)
        lr = self.norm_lr(lr)
        hr = torch.cat([hr, local_cosine_similarity(hr)], dim=1)
        lr = torch.cat([lr, local_cosine_similarity(lr)], dim=1)
        raw = self.offset(lr) + pixel_unshuffle(self.hr_offset(hr), s)
        gate = self.direct_scale(lr) + pixel_unshuffle(
            self.hr_direct_scale(hr), s)
        # Made in float64 and cast: the thirds of s = 3 stay exact.
        init = initial_positions(s, self.groups).to(raw).view(1, -1, 1, 1)
        return raw * gate.sigmoid() + init

    def forward(self, hr: Tensor, lr: Tensor, feats: Tensor) -> Tensor:
        n, c, out_h, out_w = feats.shape
        g = self.groups
        dtype = coordinate_dtype(feats.dtype)
        grid = sampling_grid(
            self.offsets(hr, lr).to(dtype), self.scale_factor, g)
        out = F.grid_sample(
            feats.reshape(n * g, c // g, out_h, out_w).to(dtype),
            grid,
            mode='bilinear',
            padding_mode='border',
            align_corners=False)
        return out.reshape(n, c, out_h, out_w).to(feats.dtype)


@MODELS.register_module('FreqFusion')
class FreqFusion(GuidedUpsampler):
    """FreqFusion, frequency-aware fusion of ``x`` into its guide.

    With ``E_l = content_encoder``, ``E_h = content_encoder2``, ``N_k`` the
    Hamming-weighted softmax of :func:`normalize_kernels`, ``R_k^s`` the
    reassembly :func:`~.carafe.carafe_reassemble` (zero padding),
    ``h = hr_channel_compressor(guide)`` and ``l =
    lr_channel_compressor(x)``::

        h'   = 2 h - R_3^1(h, N_3(E_h(h)))           # sharpened guide
        w_lp = N_5(E_l(h') + R_5^s(E_l(l), N_5(E_l(h'))))
        w_hp = N_3(E_h(h)  + R_5^s(E_h(l), w_lp))
        up   = resample(h', l, R_5^s(x, w_lp))        # if feature_resample
        out  = up + guide - R_3^1(guide, w_hp)

    Parameters (``C = C_g = 256``, defaults, ``E = 64``): compressors
    ``2 (256 E + E) = 32,896``, ``E_l`` ``25 (9 E + 1) = 14,425``, ``E_h``
    ``9 (9 E + 1) = 5,193``, resampler ``2 (72 * 9 * 32 + 32) + 2 (72 * 9
    * 8 + 8) = 51,920`` and its GroupNorms 256: 104,690 in all (104,434
    with ``resample_norm=False``), as the authors' module.

    Shapes: ``x`` ``(N, C, H, W)``, ``guide`` ``(N, C_g, sH, sW)`` ->
    ``(N, C, sH, sW)``; the high-pass term needs ``C_g == C``.

    Args:
        in_channels (int): Channels ``C`` of the map to upsample.
        scale_factor (int): Upsampling ratio ``s`` (at least 2).
            Defaults to 2.
        guide_channels (int, optional): Channels ``C_g`` of the guide.
            Defaults to None: ``in_channels``.
        lowpass_kernel (int): Low-pass (reassembly) kernel size (odd).
            Defaults to 5.
        highpass_kernel (int): High-pass kernel size (odd). Defaults to 3.
        compressed_channels (int, optional): Channels ``E`` of the
            compressed maps. Defaults to None: ``(C + C_g) // 8``, the
            authors' ``compress_ratio=8``.
        encoder_kernel (int): Kernel of the two kernel generators and of
            the offset convolutions (odd). Defaults to 3.
        feature_resample (bool): Resample the upsampled map with the offset
            generator. Defaults to True (the authors' detection setting).
        resample_groups (int): Offset groups of the resampler.
            Defaults to 4.
        resample_norm (bool): GroupNorm the compressed maps in the
            resampler. Defaults to True (the authors' Panoptic FPN sets
            False).
        hamming (bool): Weight the kernels by a Hamming window.
            Defaults to True.

    Example:
        >>> import torch
        >>> layer = FreqFusion(16, compressed_channels=16)
        >>> x, guide = torch.rand(1, 16, 5, 7), torch.rand(1, 16, 10, 14)
        >>> layer(x, guide).shape
        torch.Size([1, 16, 10, 14])
    """

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 guide_channels: Optional[int] = None,
                 lowpass_kernel: int = 5,
                 highpass_kernel: int = 3,
                 compressed_channels: Optional[int] = None,
                 encoder_kernel: int = 3,
                 feature_resample: bool = True,
                 resample_groups: int = 4,
                 resample_norm: bool = True,
                 hamming: bool = True) -> None:
        super().__init__(in_channels, scale_factor, guide_channels)
        check_int('scale_factor', scale_factor, 2)
        if self.guide_channels != self.in_channels:
            raise ValueError(
                'FreqFusion adds the high-pass part of the guide to the '
                'upsampled map, so it needs guide_channels == in_channels; '
                f'got guide_channels={self.guide_channels}, in_channels='
                f'{self.in_channels}')
        self.lowpass_kernel = check_odd('lowpass_kernel', lowpass_kernel)
        self.highpass_kernel = check_odd('highpass_kernel', highpass_kernel)
        self.encoder_kernel = check_odd('encoder_kernel', encoder_kernel)
        if compressed_channels is None:
            compressed_channels = (self.in_channels +
                                   self.guide_channels) // 8
        self.compressed_channels = check_int('compressed_channels',
                                             compressed_channels, 1)
        for name, value in (('feature_resample', feature_resample),
                            ('hamming', hamming)):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be a bool, got {value!r}')
        if feature_resample and self.in_channels % check_int(
                'resample_groups', resample_groups, 1):
            raise ValueError(
                f'in_channels ({self.in_channels}) must be divisible by '
                f'resample_groups ({resample_groups})')
        self.feature_resample = feature_resample
        self.hamming = hamming
        e = self.compressed_channels
        # The authors' leaf names: "hr" is the guide, "lr" is x.
        self.hr_channel_compressor = nn.Conv2d(self.guide_channels, e, 1)
        self.lr_channel_compressor = nn.Conv2d(self.in_channels, e, 1)
        pad = self.encoder_kernel // 2
        self.content_encoder = nn.Conv2d(
            e, self.lowpass_kernel**2, self.encoder_kernel, padding=pad)
        self.content_encoder2 = nn.Conv2d(
            e, self.highpass_kernel**2, self.encoder_kernel, padding=pad)
        if feature_resample:
            self.dysampler = FreqFusionResampler(
                e,
                self.scale_factor,
                groups=resample_groups,
                kernel_size=self.encoder_kernel,
                norm=resample_norm)
        for name, k in (('lowpass_window', self.lowpass_kernel),
                        ('highpass_window', self.highpass_kernel)):
            window = hamming_window(k) if hamming else torch.ones(k * k)
            self.register_buffer(name, window, persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform convolutions (zero bias), kernel generators
        ~ N(0, 0.001), GroupNorms 1 / 0.

        The authors' effective initialisation: their FPN re-initialises
        every convolution (the offset generator's included) before calling
        this. Hosts call it after their own initialisation.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                xavier_init(m, distribution='uniform')
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        normal_init(self.content_encoder, std=0.001)
        normal_init(self.content_encoder2, std=0.001)

    def kernels(self, x: Tensor, guide: Tensor):
        """The low- and high-pass kernels and the compressed maps.

        Returns:
            tuple[Tensor]: ``w_lp`` ``(N, k_l**2, sH, sW)`` and ``w_hp``
            ``(N, k_h**2, sH, sW)`` (each kernel sums to one), the
            sharpened compressed guide ``h'`` ``(N, E, sH, sW)`` and the
            compressed input ``l`` ``(N, E, H, W)``.
        """
        s = self.scale_factor
        kl, kh = self.lowpass_kernel, self.highpass_kernel
        hr = self.hr_channel_compressor(guide)
        lr = self.lr_channel_compressor(x)
        hp_logits = self.content_encoder2(hr)
        hr = 2 * hr - carafe_reassemble(
            hr, normalize_kernels(hp_logits, self.highpass_window), kh, 1, 1)
        lp_logits = self.content_encoder(hr)
        w_init = normalize_kernels(lp_logits, self.lowpass_window)
        lp_logits = lp_logits + carafe_reassemble(
            self.content_encoder(lr), w_init, kl, 1, s)
        w_lp = normalize_kernels(lp_logits, self.lowpass_window)
        hp_logits = hp_logits + carafe_reassemble(
            self.content_encoder2(lr), w_lp, kl, 1, s)
        w_hp = normalize_kernels(hp_logits, self.highpass_window)
        return w_lp, w_hp, hr, lr

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Upsample ``x`` ``(N, C, H, W)`` under ``guide`` ``(N, C, sH, sW)``
        to ``(N, C, sH, sW)``: resampled low-pass upsampling plus the
        guide's high-pass part."""
        self.check_guide(x, guide)
        w_lp, w_hp, hr, lr = self.kernels(x, guide)
        up = carafe_reassemble(x, w_lp, self.lowpass_kernel, 1,
                               self.scale_factor)
        if self.feature_resample:
            up = self.dysampler(hr, lr, up)
        high = guide - carafe_reassemble(guide, w_hp, self.highpass_kernel,
                                         1, 1)
        return up + high

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, lowpass_kernel='
                f'{self.lowpass_kernel}, highpass_kernel='
                f'{self.highpass_kernel}, compressed_channels='
                f'{self.compressed_channels}, feature_resample='
                f'{self.feature_resample}, hamming={self.hamming}')
