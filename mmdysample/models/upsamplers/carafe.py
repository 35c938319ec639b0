# Copyright (c) mmdysample contributors. All rights reserved.
"""CARAFE in plain PyTorch: the reassembly and a ``CARAFEPack`` twin.

mmcv's ``carafe`` op (used by ``CARAFEPack``, registered as ``'carafe'``) has
CUDA kernels only. :func:`carafe_reassemble` computes the same function with
an unfold (im2col) + batched matmul on any device; FADE, SAPA-B and A2U end
in it too, and differ only in how they predict the kernels.
:class:`CARAFEUnfold` (registered as ``'CARAFEUnfold'``) is ``CARAFEPack``
with this reassembly, so CARAFE models train and test on a CPU, and a
checkpoint moves between the two. Its latency and memory are those of the
unfold formulation, which holds ``k**2`` copies of the input, not those of
the fused CUDA kernel.

Paper: Wang, Chen, Xu, Liu, Loy, Lin. "CARAFE: Content-Aware ReAssembly of
FEatures", ICCV 2019. https://arxiv.org/abs/1905.02188
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import normal_init, xavier_init
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int, check_odd
from .sampling import is_eager


def carafe_reassemble(features: Tensor, masks: Tensor, kernel_size: int,
                      group_size: int, scale_factor: int) -> Tensor:
    """Content-aware reassembly, computing what mmcv's ``carafe`` op does.

    Output pixel ``(i, j)`` of channel ``c`` is the weighted sum of the
    ``k x k`` neighbourhood (zero padded) of input pixel
    ``(i // s, j // s)`` of channel ``c``, with the weights of mask group
    ``c // (C / G)`` at ``(i, j)``; within a group, mask channel
    ``dy * k + dx`` weighs neighbour ``(dy - k // 2, dx - k // 2)``
    (CARAFE paper eq. 1 and 4). The masks are used as given; ``CARAFEPack``
    softmax-normalises them first.

    On CPU, backward is slow when the output gradient is an expanded
    (stride 0) tensor, as from ``out.sum().backward()``: ``bmm``'s backward
    then takes a per-matrix path. Real (dense) gradients do not.

    Shapes: features ``(N, C, H, W)``, masks ``(N, G * k * k, sH, sW)``
    ``-> (N, C, sH, sW)``.

    Args:
        features (Tensor): Low-resolution features, ``C`` divisible by
            ``group_size``.
        masks (Tensor): Reassembly kernels, one per output pixel and group.
        kernel_size (int): Reassembly kernel size ``k`` (odd).
        group_size (int): Number of channel groups ``G`` sharing a kernel.
        scale_factor (int): Upsampling ratio ``s``.

    Returns:
        Tensor: The upsampled features.

    Example:
        >>> import torch
        >>> feats = torch.rand(2, 8, 5, 7)
        >>> masks = torch.rand(2, 2 * 9, 10, 14).softmax(1)
        >>> carafe_reassemble(feats, masks, kernel_size=3, group_size=2,
        ...                   scale_factor=2).shape
        torch.Size([2, 8, 10, 14])
    """
    k = check_odd('kernel_size', kernel_size)
    g = check_int('group_size', group_size, 1)
    s = check_int('scale_factor', scale_factor, 1)
    if features.dim() != 4 or masks.dim() != 4:
        raise ValueError('features and masks must be 4-D, got shapes '
                         f'{tuple(features.shape)} and {tuple(masks.shape)}')
    n, c, h, w = features.shape
    if c % g != 0:
        raise ValueError(
            f'channels ({c}) must be divisible by group_size ({g})')
    expected = (n, g * k * k, s * h, s * w)
    if tuple(masks.shape) != expected:
        raise ValueError(f'masks must have shape {expected} for features '
                         f'{tuple(features.shape)}, k={k}, G={g}, s={s}; '
                         f'got {tuple(masks.shape)}')

    r = (k - 1) // 2
    if not is_eager():
        return _reassemble_graph(features, masks, k, g, s)
    if s == 1:
        return _reassemble_same_size(features, masks, k, g)
    # im2col on a channels-last copy: the k*k windows become a strided view
    # whose copy below moves contiguous runs of C / G channels. (F.unfold's
    # (N, C*k*k, H*W) layout needs a transposing copy of k*k times the input
    # before the matmul: several times slower on CPU.)
    padded = F.pad(features, (r, r, r, r)).permute(0, 2, 3, 1).contiguous()
    windows = padded.unfold(1, k, 1).unfold(2, k, 1)  # (N, H, W, C, k, k)
    windows = windows.reshape(n, h, w, g, c // g, k, k)
    cols = windows.permute(0, 1, 2, 3, 5, 6, 4)
    cols = cols.reshape(n * h * w * g, k * k, c // g)
    # The kernels of the s x s output pixels that low-res pixel (y, x) makes.
    kernels = masks.reshape(n, g, k * k, h, s, w, s).permute(
        0, 3, 5, 1, 4, 6, 2).reshape(n * h * w * g, s * s, k * k)
    out = torch.bmm(kernels, cols)  # (N*H*W*G, s*s, C/G)
    out = out.reshape(n, h, w, g, s, s, c // g).permute(0, 3, 6, 1, 4, 2, 5)
    return out.reshape(n, c, s * h, s * w)


def _reassemble_same_size(features: Tensor, masks: Tensor, k: int,
                          g: int) -> Tensor:
    """:func:`carafe_reassemble` at ``scale_factor=1``, one tap at a time.

    Each output pixel has a single kernel row, so the batched matmul would
    multiply a ``1 x k*k`` matrix per pixel, which CPU ``bmm`` runs one
    matrix at a time (a copy per pixel: 3.4 x slower for FreqFusion's
    high-pass filters at 256 x 240 x 240). ``k * k`` shifted products add
    up the same sum without the copies or the ``k * k`` window copy (one
    fused multiply-add over the output per tap).
    """
    n, c, h, w = features.shape
    padded = F.pad(features, ((k - 1) // 2, ) * 4)
    padded = padded.reshape(n, g, c // g, h + k - 1, w + k - 1)
    weights = masks.reshape(n, g, 1, k * k, h, w)
    out = None
    for dy in range(k):
        for dx in range(k):
            tap = padded[..., dy:dy + h, dx:dx + w]
            weight = weights[:, :, :, dy * k + dx]
            # One fused pass per tap (autograd keeps tap and weight).
            out = tap * weight if out is None else out.addcmul_(tap, weight)
    return out.reshape(n, c, h, w)


def _reassemble_graph(features: Tensor, masks: Tensor, k: int, g: int,
                      s: int) -> Tensor:
    """:func:`carafe_reassemble` for traced graphs (ONNX, ``torch.compile``).

    ``Tensor.unfold`` does not export with dynamic sizes; ``F.unfold``
    (ONNX has it as a pattern of ``Pad`` / ``Gather``) does. Slower on a
    CPU, so eager mode keeps the strided im2col above.
    """
    n, c, h, w = features.shape
    cols = F.unfold(features, k, padding=(k - 1) // 2)
    cols = cols.reshape(n, g, c // g, k * k, h, w)
    kernels = masks.reshape(n, g, k * k, h, s, w, s)
    out = torch.einsum('ngcjhw,ngjhawb->ngchawb', cols, kernels)
    return out.reshape(n, c, s * h, s * w)


@MODELS.register_module()
class CARAFEUnfold(nn.Module):
    """``mmcv.ops.CARAFEPack`` with :func:`carafe_reassemble` as reassembly.

    Same arguments, sub-modules, initialisation and state-dict keys as
    ``CARAFEPack`` (channel compressor, content encoder, pixel shuffle of the
    kernels, softmax over each ``k x k`` kernel, reassembly), so a
    ``CARAFEPack`` state dict loads strictly and gives the same output; it
    runs on any device. Built by name like any upsampler::

        upsample_cfg=dict(type='CARAFEUnfold')  # the paper's CARAFE setting

    Shapes: ``(N, C, H, W) -> (N, C, sH, sW)``.

    Args:
        channels (int): Input (and output) channels.
        scale_factor (int): Upsampling ratio.
        up_kernel (int): Reassembly kernel size. Defaults to 5.
        up_group (int): Reassembly groups. Defaults to 1.
        encoder_kernel (int): Content encoder kernel size. Defaults to 3.
        encoder_dilation (int): Content encoder dilation. Defaults to 1.
        compressed_channels (int): Channels after the compressor.
            Defaults to 64.

    Example:
        >>> import torch
        >>> layer = CARAFEUnfold(16, scale_factor=2)
        >>> layer(torch.rand(1, 16, 6, 9)).shape
        torch.Size([1, 16, 12, 18])
    """

    def __init__(self,
                 channels: int,
                 scale_factor: int,
                 up_kernel: int = 5,
                 up_group: int = 1,
                 encoder_kernel: int = 3,
                 encoder_dilation: int = 1,
                 compressed_channels: int = 64) -> None:
        super().__init__()
        self.channels = check_int('channels', channels, 1)
        self.scale_factor = check_int('scale_factor', scale_factor, 1)
        self.up_kernel = check_odd('up_kernel', up_kernel)
        self.up_group = check_int('up_group', up_group, 1)
        self.encoder_kernel = check_int('encoder_kernel', encoder_kernel, 1)
        self.encoder_dilation = check_int('encoder_dilation',
                                          encoder_dilation, 1)
        self.compressed_channels = check_int('compressed_channels',
                                             compressed_channels, 1)
        if channels % up_group != 0:
            raise ValueError(f'channels ({channels}) must be divisible by '
                             f'up_group ({up_group})')
        self.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            compressed_channels,
            up_kernel * up_kernel * up_group * scale_factor * scale_factor,
            encoder_kernel,
            padding=int((encoder_kernel - 1) * encoder_dilation / 2),
            dilation=encoder_dilation)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform convolutions, content encoder ~ N(0, 0.001)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                xavier_init(m, distribution='uniform')
        normal_init(self.content_encoder, std=0.001)

    def kernel_normalizer(self, mask: Tensor) -> Tensor:
        """``(N, G*k*k*s*s, H, W) -> (N, G*k*k, sH, sW)``, softmax per kernel.
        """
        mask = F.pixel_shuffle(mask, self.scale_factor)
        n, mask_c, h, w = mask.shape
        mask = mask.view(n, mask_c // self.up_kernel**2, -1, h, w)
        mask = F.softmax(mask, dim=2, dtype=mask.dtype)
        return mask.view(n, mask_c, h, w)

    def feature_reassemble(self, x: Tensor, mask: Tensor) -> Tensor:
        return carafe_reassemble(x, mask, self.up_kernel, self.up_group,
                             self.scale_factor)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample ``x`` of shape ``(N, C, H, W)`` to ``(N, C, sH, sW)``."""
        mask = self.content_encoder(self.channel_compressor(x))
        return self.feature_reassemble(x, self.kernel_normalizer(mask))

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, scale_factor={self.scale_factor}, '
                f'up_kernel={self.up_kernel}, up_group={self.up_group}')
