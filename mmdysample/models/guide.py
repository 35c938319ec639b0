# Copyright (c) mmdysample contributors. All rights reserved.
"""The guide protocol: upsamplers that read the map they upsample to.

Most upsamplers see only the low-resolution map ``x``. Guided ones (FADE,
SAPA-B, IndexNet, A2U, ...) also read a high-resolution *guide*: in an FPN,
the finer level's lateral. An upsampler says so on its class, and is then
called with two arguments::

    class MyUpsampler(nn.Module):
        needs_guide = True       # forward(x, guide)
        # and the attributes ``scale_factor`` and ``guide_channels``

:class:`GuidedUpsampler` is a base class that declares all three and checks
the guide's shape. Hosts (necks, heads, pixel decoders) never keep a table
of names: they ask :func:`needs_guide` and call every upsampler through
:func:`upsample`, which calls ``layer(x)`` for the others, so DySample and
mmcv's upsamplers run exactly as before.

Odd sizes: a stride-2 backbone gives a coarse map of ``ceil(H / 2)`` rows
under a finer one of ``H``, so the guide of a x``s`` stage may be up to
``s - 1`` rows (columns) short of ``s`` times ``x``. :func:`upsample`
replicates its last row / column up to that size, the upsampler returns
``(N, C, sH, sW)``, and the host crops it to the finer level's size (see
:func:`~mmdysample.models.align.fit_to_size`) as for any upsampler.
"""
from typing import ClassVar, Optional, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .checks import check_int


def needs_guide(layer) -> bool:
    """Whether ``layer`` (a module or a class) is called as ``layer(x, guide)``.

    Example:
        >>> import torch.nn as nn
        >>> needs_guide(nn.Upsample(scale_factor=2))
        False
    """
    return getattr(layer, 'needs_guide', False) is True


def guide_shape(layer, shape) -> Tuple[int, int, int, int]:
    """``(N, C_g, sH, sW)``: the guide a guided ``layer`` reads beside an
    input of ``shape`` ``(N, C, H, W)`` (for export and benchmarks).

    Example:
        >>> guide_shape(GuidedUpsampler(16, 2, guide_channels=8),
        ...             (1, 16, 5, 7))
        (1, 8, 10, 14)
    """
    n, _, h, w = (int(v) for v in shape)
    s = int(layer.scale_factor)
    return (n, int(layer.guide_channels), s * h, s * w)


class GuidedUpsampler(nn.Module):
    """Base of upsamplers that read a high-resolution guide.

    Subclasses implement ``forward(x, guide)`` and call
    :meth:`check_guide` first.

    Shapes: ``x`` ``(N, C, H, W)``, ``guide`` ``(N, C_g, sH, sW)`` ->
    ``(N, C, sH, sW)``.

    Args:
        in_channels (int): Channels ``C`` of the map to upsample.
        scale_factor (int): Upsampling ratio ``s``.
        guide_channels (int, optional): Channels ``C_g`` of the guide.
            Defaults to None: ``in_channels`` (an FPN's laterals).
    """

    needs_guide: ClassVar[bool] = True

    def __init__(self,
                 in_channels: int,
                 scale_factor: int,
                 guide_channels: Optional[int] = None) -> None:
        super().__init__()
        self.in_channels = check_int('in_channels', in_channels, 1)
        self.scale_factor = check_int('scale_factor', scale_factor, 1)
        self.guide_channels = (
            self.in_channels if guide_channels is None else check_int(
                'guide_channels', guide_channels, 1))

    def check_guide(self, x: Tensor, guide: Tensor) -> None:
        """Raise a ``ValueError`` unless ``x`` and ``guide`` fit this layer.
        """
        name = type(self).__name__
        if not isinstance(guide, Tensor):
            raise TypeError(f'{name} needs a guide tensor: call it as '
                            f'{name}(x, guide); got guide={guide!r}')
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{name} expects x of shape (N, {self.in_channels}, H, W), '
                f'got {tuple(x.shape)}')
        n, _, h, w = x.shape
        s = self.scale_factor
        expected = (n, self.guide_channels, s * h, s * w)
        if tuple(guide.shape) != expected:
            raise ValueError(
                f'{name} expects a guide of shape {expected} for x of shape '
                f'{tuple(x.shape)} (scale_factor={s}, guide_channels='
                f'{self.guide_channels}), got {tuple(guide.shape)}')

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, scale_factor='
                f'{self.scale_factor}, guide_channels={self.guide_channels}')


def upsample(layer: nn.Module,
             x: Tensor,
             guide: Tensor,
             host: str = 'upsample',
             stage: Optional[Union[int, str]] = None) -> Tensor:
    """Run one upsampling stage of a host, with its guide if it needs one.

    ``layer(x)`` for an upsampler that reads no guide (the result is
    unchanged, bit for bit). For a guided one the guide is checked against
    ``layer.guide_channels`` and ``ceil(guide size / s) == x size``, padded
    by replication at the bottom / right to exactly ``s`` times ``x``, and
    ``layer(x, guide)`` is returned: ``(N, C, sH, sW)``, which the host fits
    to the finer level's size.

    Args:
        layer (nn.Module): The upsampler.
        x (Tensor): The low-resolution map ``(N, C, H, W)``.
        guide (Tensor): The high-resolution map of the level ``x`` is
            brought up to, ``(N, C_g, H_g, W_g)``.
        host (str): Name of the calling module, for error messages.
            Defaults to ``'upsample'``.
        stage (int | str, optional): Which stage of the host this is, for
            error messages. Defaults to None.

    Returns:
        Tensor: The upsampled map.

    Raises:
        ValueError: The guide's batch, channels or size do not fit ``x``
            and the layer; the message names the host, the stage and both
            shapes.

    Example:
        >>> import torch
        >>> import mmdysample  # noqa: F401 (registers the upsamplers)
        >>> from mmdysample.models import build_upsampler
        >>> layer = build_upsampler('FADE', in_channels=16)
        >>> x, guide = torch.rand(1, 16, 16, 22), torch.rand(1, 16, 32, 43)
        >>> upsample(layer, x, guide, host='MyNeck', stage=0).shape
        torch.Size([1, 16, 32, 44])
    """
    if not needs_guide(layer):
        return layer(x)
    where = host if stage is None else f'{host} stage {stage}'
    s = int(layer.scale_factor)
    channels = int(getattr(layer, 'guide_channels', x.shape[1]))
    if not isinstance(guide, Tensor) or guide.dim() != 4:
        shape = tuple(guide.shape) if isinstance(guide, Tensor) else guide
        raise ValueError(f'{where}: {type(layer).__name__} needs a 4-D '
                         f'guide, got {shape!r} for x of shape '
                         f'{tuple(x.shape)}')
    n, _, h, w = x.shape
    gh, gw = guide.shape[-2:]
    fits = (guide.shape[0] == n and guide.shape[1] == channels
            and -(-gh // s) == h and -(-gw // s) == w)
    if not fits:
        raise ValueError(
            f'{where}: the guide of shape {tuple(guide.shape)} does not fit '
            f'x of shape {tuple(x.shape)}: {type(layer).__name__} '
            f'(scale_factor={s}) needs (N={n}, C={channels}) and a size '
            f'within {s - 1} pixel(s) below {s}x that of x, '
            f'{(s * h, s * w)}')
    if (gh, gw) != (s * h, s * w):
        guide = F.pad(guide, (0, s * w - gw, 0, s * h - gh), mode='replicate')
    return layer(x, guide)
