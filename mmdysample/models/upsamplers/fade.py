# Copyright (c) mmdysample contributors. All rights reserved.
"""FADE: reassembly kernels from the decoder map and the encoder guide.

FADE predicts CARAFE kernels from both maps of an encoder-decoder skip: the
high-resolution guide (the "encoder" feature, in an FPN the finer lateral)
and the low-resolution map it upsamples (the "decoder" feature). Both are
compressed to a common embedding and run through one shared content
encoder; the low-resolution logits are repeated (nearest) onto the output
grid and added ("semi-shift" convolution), a softmax makes each ``k x k``
kernel sum to one, and the kernels reassemble the low-resolution map. The
DySample paper uses FADE without its gate; the gate is an option here.

Paper: Lu, Liu, Fu, Cao. "FADE: Fusing the Assets of Decoder and Encoder
for Task-Agnostic Upsampling", ECCV 2022. https://arxiv.org/abs/2207.10392
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import xavier_init
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int, check_odd
from ..guide import GuidedUpsampler
from .carafe import carafe_reassemble


@MODELS.register_module('FADE')
class FADE(GuidedUpsampler):
    """FADE, guided CARAFE kernels from the guide and the input.

    With ``k = up_kernel``, ``E = content_encoder`` and nearest upsampling
    ``up_s``, the kernels and the output are::

        w   = softmax_k*k(E(compressor_en(guide)) + up_s(E(compressor_de(x))))
        out = carafe_reassemble(x, w, k, 1, s)

    (one kernel per output pixel, shared by all channels, zero padding at
    the borders). With ``gating=True`` the authors' gate mixes in the
    guide: ``gate = sigmoid(up_s(gate_generator(x)))`` from a 1x1
    convolution of ``x`` to one channel, and ``out = gate * guide +
    (1 - gate) * out``. That is still "the upsampled map" of the guide
    protocol: the authors' FPN adds the guide to it, as for any
    upsampler. The gate needs ``guide_channels == in_channels``.

    Parameters (``C = C_g = 256``, defaults): ``(64 C + 64) + 64 C +
    (64 * 25 * 9 + 25) = 47,257``; the gate adds ``C + 1 = 257``.

    Shapes: ``x`` ``(N, C, H, W)``, ``guide`` ``(N, C_g, sH, sW)`` ->
    ``(N, C, sH, sW)``.

    Args:
        in_channels (int): Channels ``C`` of the map to upsample.
        scale_factor (int): Upsampling ratio ``s``. Defaults to 2.
        guide_channels (int, optional): Channels ``C_g`` of the guide.
            Defaults to None: ``in_channels``.
        up_kernel (int): Reassembly kernel size ``k`` (odd). Defaults to 5.
        encoder_kernel (int): Kernel size of the shared content encoder
            (odd, "same" padding). Defaults to 3.
        embedding_dim (int): Channels both maps are compressed to.
            Defaults to 64.
        gating (bool): Mix the guide into the output through the authors'
            gate. Defaults to False (the DySample paper's setting).

    Example:
        >>> import torch
        >>> layer = FADE(16, scale_factor=2)
        >>> x, guide = torch.rand(1, 16, 5, 7), torch.rand(1, 16, 10, 14)
        >>> layer(x, guide).shape
        torch.Size([1, 16, 10, 14])
    """

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 guide_channels: Optional[int] = None,
                 up_kernel: int = 5,
                 encoder_kernel: int = 3,
                 embedding_dim: int = 64,
                 gating: bool = False) -> None:
        super().__init__(in_channels, scale_factor, guide_channels)
        self.up_kernel = check_odd('up_kernel', up_kernel)
        self.encoder_kernel = check_odd('encoder_kernel', encoder_kernel)
        self.embedding_dim = check_int('embedding_dim', embedding_dim, 1)
        if not isinstance(gating, bool):
            raise TypeError(f'gating must be a bool, got {gating!r}')
        if gating and self.guide_channels != self.in_channels:
            raise ValueError(
                'gating=True mixes the guide into the output, so it needs '
                f'guide_channels == in_channels; got guide_channels='
                f'{self.guide_channels}, in_channels={self.in_channels}')
        self.gating = gating
        # The authors' leaf names (their keys carry a ``ker_generator.`` /
        # ``gate_generator.conv`` prefix): "en" is the guide, "de" is x.
        self.compressor_en = nn.Conv2d(self.guide_channels, embedding_dim, 1)
        # No bias (as the authors): away from the borders, the guide
        # branch's bias already adds the offset one here would add.
        self.compressor_de = nn.Conv2d(
            self.in_channels, embedding_dim, 1, bias=False)
        self.content_encoder = nn.Conv2d(
            embedding_dim,
            self.up_kernel**2,
            self.encoder_kernel,
            padding=self.encoder_kernel // 2)
        if gating:
            self.gate_generator = nn.Conv2d(self.in_channels, 1, 1)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform weights and zero biases for every convolution.

        As in the authors' code (content encoder included, unlike CARAFE's
        N(0, 0.001)). Hosts call this after their own initialisation.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                xavier_init(m, distribution='uniform')

    def kernels(self, x: Tensor, guide: Tensor) -> Tensor:
        """Reassembly kernels ``(N, k*k, sH, sW)``, each summing to one."""
        s = self.scale_factor
        logits_hr = self.content_encoder(self.compressor_en(guide))
        logits_lr = self.content_encoder(self.compressor_de(x))
        logits = logits_hr + F.interpolate(
            logits_lr, scale_factor=s, mode='nearest')
        return logits.softmax(dim=1)

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """Upsample ``x`` ``(N, C, H, W)`` under ``guide`` ``(N, C_g, sH, sW)``
        to ``(N, C, sH, sW)``."""
        self.check_guide(x, guide)
        s = self.scale_factor
        out = carafe_reassemble(x, self.kernels(x, guide), self.up_kernel, 1,
                                s)
        if not self.gating:
            return out
        # sigmoid commutes with nearest upsampling: apply it at low res.
        gate = F.interpolate(
            torch.sigmoid(self.gate_generator(x)),
            scale_factor=s,
            mode='nearest')
        return gate * guide + (1 - gate) * out

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, up_kernel={self.up_kernel}, '
                f'encoder_kernel={self.encoder_kernel}, embedding_dim='
                f'{self.embedding_dim}, gating={self.gating}')
