# Copyright (c) mmdysample contributors. All rights reserved.
"""DySample: learning to upsample by learning to sample.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085
"""
import numbers
from typing import Any, Dict

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..checks import check_int
from . import fast_cpu
from .offsets import project, scope_offsets, stacked_weights
from .sampling import (INIT_MODES, coordinate_dtype, dysample_sample,
                       initial_positions, is_eager, pixel_shuffle,
                       pixel_unshuffle, use_fast_cpu)

STYLES = ('lp', 'pl')


@MODELS.register_module('dysample')
@MODELS.register_module()
class DySample(nn.Module):
    """Dynamic point-sampling upsampler.

    A 1x1 convolution predicts, for each input pixel, ``groups * s**2``
    offsets that move the bilinear sampling positions of the ``s x s`` output
    pixels it produces; ``grid_sample`` then reads the input there. Channels
    in one group share their sampling points.

    The four variants of the paper are registered as presets:

    ============  =====  ======  ========
    name          style  groups  dyscope
    ============  =====  ======  ========
    DySample      lp     4       False
    DySample+     lp     4       True
    DySample-S    pl     8       False
    DySample-S+   pl     8       True
    ============  =====  ======  ========

    Shapes: ``(N, C, H, W) -> (N, C, s * H, s * W)``.

    Args:
        in_channels (int): Number of input (and output) channels ``C``.
        scale_factor (int): Upsampling ratio ``s`` (an integer >= 1).
            Defaults to 2.
        style (str): Offset generation style. ``'lp'`` (linear + pixel
            shuffle) projects ``C`` channels to ``2 * g * s**2`` offsets;
            ``'pl'`` (pixel shuffle + linear) first pixel-shuffles the input
            to ``C / s**2`` channels and projects those to ``2 * g`` offsets,
            using ``1 / s**4`` of the weights. Defaults to ``'lp'``.
        groups (int): Number of channel groups with their own sampling
            points. Defaults to 4.
        dyscope (bool): Use the dynamic scope factor
            ``2 * scope_factor * sigmoid(linear(x))`` (paper eq. 5) instead
            of the static one (eq. 4). Defaults to False.
        scope_factor (float): The static scope factor (0.25 in the paper,
            Table 2 ablates 0.1 / 0.25 / 0.5 / 1). With ``dyscope`` the
            dynamic factor ranges over ``[0, 2 * scope_factor]``.
            Defaults to 0.25.
        init_mode (str): Initial sampling positions, ``'bilinear'`` or
            ``'nearest'`` (paper Table 1). Defaults to ``'bilinear'``.
        hard_scope (bool): Bound the offsets to ``scope_factor`` with
            ``tanh`` (the hard constraint of the paper's Remark, which it
            found to work worse). Defaults to False.
        scope_bias (bool): Give the dynamic scope convolution a bias (only
            with ``dyscope``). The authors' detection code, which trained
            their released checkpoints, has one; their later standalone
            layer has none. A state dict whose ``scope.bias`` presence
            differs from the layer's is refused, strict or not: dropping or
            zero-filling the bias would compute another function.
            Defaults to False.

    Attributes:
        offset (nn.Conv2d): The offset projection.
        scope (nn.Conv2d): The dynamic scope projection (only with
            ``dyscope``; a bias only with ``scope_bias``).
        init_pos (Tensor): Buffer of initial positions,
            ``(1, 2 * g * s**2, 1, 1)``.

    Example:
        >>> import torch
        >>> from mmdysample import DySample
        >>> layer = DySample(in_channels=64, scale_factor=2)
        >>> layer(torch.rand(2, 64, 15, 20)).shape
        torch.Size([2, 64, 30, 40])
        >>> sum(p.numel() for p in DySample(256).parameters())
        8224
    """

    def __init__(self,
                 in_channels: int,
                 scale_factor: int = 2,
                 style: str = 'lp',
                 groups: int = 4,
                 dyscope: bool = False,
                 scope_factor: float = 0.25,
                 init_mode: str = 'bilinear',
                 hard_scope: bool = False,
                 scope_bias: bool = False) -> None:
        super().__init__()
        in_channels = check_int('in_channels', in_channels, 1)
        scale_factor = check_int('scale_factor', scale_factor, 1)
        groups = check_int('groups', groups, 1)
        if style not in STYLES:
            raise ValueError(f'style must be one of {STYLES}, got {style!r}')
        if init_mode not in INIT_MODES:
            raise ValueError(f'init_mode must be one of {INIT_MODES}, '
                             f'got {init_mode!r}')
        if isinstance(scope_factor, bool) or not isinstance(
                scope_factor, numbers.Real) or not scope_factor > 0:
            raise ValueError('scope_factor must be a positive number, '
                             f'got {scope_factor!r}')
        for name, flag in (('dyscope', dyscope), ('hard_scope', hard_scope),
                           ('scope_bias', scope_bias)):
            if not isinstance(flag, bool):
                raise TypeError(f'{name} must be a bool, got {flag!r}')
        if scope_bias and not dyscope:
            raise ValueError('scope_bias=True needs dyscope=True (the bias '
                             'belongs to the dynamic scope convolution), '
                             'got dyscope=False')
        if in_channels % groups != 0:
            raise ValueError(f'in_channels ({in_channels}) must be divisible '
                             f'by groups ({groups})')
        if style == 'pl' and in_channels % scale_factor**2 != 0:
            raise ValueError(
                f"in_channels ({in_channels}) must be divisible by "
                f"scale_factor**2 ({scale_factor**2}) for style='pl'")

        self.in_channels = in_channels
        self.scale_factor = scale_factor
        self.style = style
        self.groups = groups
        self.dyscope = dyscope
        self.scope_factor = float(scope_factor)
        self.init_mode = init_mode
        self.hard_scope = hard_scope
        self.scope_bias = scope_bias

        if style == 'pl':
            proj_in = in_channels // scale_factor**2
            proj_out = 2 * groups
        else:
            proj_in = in_channels
            proj_out = 2 * groups * scale_factor**2
        self.offset = nn.Conv2d(proj_in, proj_out, 1)
        if dyscope:
            self.scope = nn.Conv2d(proj_in, proj_out, 1, bias=scope_bias)
        self.register_buffer(
            'init_pos',
            initial_positions(scale_factor, groups, init_mode,
                              torch.get_default_dtype()))
        self.init_weights()

    def init_weights(self) -> None:
        """Offsets start near zero, the dynamic scope at 0.5 * max.

        Offset weights ~ N(0, 0.001) with zero bias and scope weights (and
        bias) 0, as in the authors' code. A parent's ``init_weights`` calls
        this after its own ``init_cfg`` (e.g. Xavier on every ``Conv2d``),
        which restores it.
        """
        nn.init.normal_(self.offset.weight, mean=0.0, std=0.001)
        nn.init.zeros_(self.offset.bias)
        if self.dyscope:
            nn.init.zeros_(self.scope.weight)
            if self.scope_bias:
                nn.init.zeros_(self.scope.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        """Refuse a scope layout other than the layer's, strict or not.

        Any loader (``load_state_dict``, mmengine's ``load_checkpoint``) calls
        this before loading the ``offset`` / ``scope`` convolutions, with
        ``state_dict`` holding this layer's keys under ``prefix``. A state
        dict without this layer's scope weights is left to the loader (its
        missing keys are reported as usual).
        """
        weight, bias = prefix + 'scope.weight', prefix + 'scope.bias'
        if weight in state_dict and not self.dyscope:
            raise ValueError(
                f'state dict has {weight} (a dynamic scope) but the layer '
                'was built with dyscope=False; build it with dyscope=True')
        if weight in state_dict and (bias in state_dict) != self.scope_bias:
            has = 'has' if bias in state_dict else 'has no'
            raise ValueError(
                f'state dict {has} {bias} but the layer was built with '
                f'scope_bias={self.scope_bias}; build it with '
                f'scope_bias={not self.scope_bias} to load it (dropping or '
                'zero-filling the bias would compute another function)')
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f'x must be a Tensor, got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError('x must be a 4-D tensor (N, C, H, W), got shape '
                             f'{tuple(x.shape)}')
        # Under torch.jit.trace (and the TorchScript ONNX exporter) sizes are
        # traced tensors, and branching on one bakes a Python bool into the
        # trace with a TracerWarning. The channel count is fixed by the
        # weights, so the check is skipped there rather than traced.
        if not torch.jit.is_tracing() and x.shape[1] != self.in_channels:
            raise ValueError(f'x has {x.shape[1]} channels but the layer was '
                             f'built with in_channels={self.in_channels}')
        if not x.is_floating_point():
            raise TypeError(
                f'x must be a floating point tensor, got {x.dtype}')

    def _scoped(self, feat: Tensor) -> Tensor:
        """Offsets (before pixel unshuffle) predicted from ``feat``."""
        offset = self.offset(feat)
        if self.hard_scope:
            offset = offset.tanh()
        if self.dyscope:
            offset = offset * self.scope(feat).sigmoid() * (
                2 * self.scope_factor)
        else:
            offset = offset * self.scope_factor
        return offset

    def sampling_offsets_reference(self, x: Tensor) -> Tensor:
        """:meth:`sampling_offsets` in the paper's formulation.

        The ``'pl'`` style pixel-shuffles ``x`` before the projections and
        pixel-unshuffles the offsets after; the dynamic scope is a second
        convolution. Tracing, export and ``torch.compile`` use this; eager
        code the fused formulation of :mod:`.offsets`, which is tested
        against it.
        """
        self._check_input(x)
        s = self.scale_factor
        if self.style == 'pl':
            offset = pixel_unshuffle(self._scoped(pixel_shuffle(x, s)), s)
        else:
            offset = self._scoped(x)
        return offset + self.init_pos

    def _raw_offsets(self, x: Tensor) -> Tensor:
        """The fused projection: raw offsets (and scope logits) of ``x``."""
        weight, bias = stacked_weights(self.offset,
                                       self.scope if self.dyscope else None)
        return project(x, weight, bias, self.style, self.scale_factor)

    def sampling_offsets(self, x: Tensor) -> Tensor:
        """Offsets of every sampling point, initial positions included.

        Args:
            x (Tensor): Input of shape ``(N, C, H, W)``.

        Returns:
            Tensor: ``(N, 2 * g * s**2, H, W)`` offsets in input pixels from
            the centre of each low-resolution pixel, laid out as
            ``(xy, group, sub_row, sub_col)``; this is what :meth:`forward`
            samples at (used by the offset visualisation tool).
        """
        if not is_eager():
            return self.sampling_offsets_reference(x)
        self._check_input(x)
        return scope_offsets(
            self._raw_offsets(x), self.scope_factor, self.dyscope,
            self.hard_scope, self.init_pos)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample ``x`` of shape ``(N, C, H, W)`` to ``(N, C, sH, sW)``.

        On the CPU the fused kernel runs the whole layer (see
        :func:`.fast_cpu.fused_sample_cpu`); elsewhere the offsets of
        :meth:`sampling_offsets` go to :func:`.sampling.dysample_sample`.
        """
        self._check_input(x)
        if self.hard_scope or not use_fast_cpu(x):
            return dysample_sample(x, self.sampling_offsets(x),
                                   self.scale_factor, self.groups)
        dtype = coordinate_dtype(x.dtype)
        weight, bias = stacked_weights(self.offset,
                                       self.scope if self.dyscope else None)
        out = fast_cpu.fused_sample_cpu(
            x.to(dtype), weight.to(dtype),
            bias.to(dtype) if bias is not None else None, self.style,
            self.scale_factor, self.groups, self.init_pos, self.scope_factor,
            self.dyscope)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        args = [
            f'in_channels={self.in_channels}',
            f'scale_factor={self.scale_factor}', f'style={self.style!r}',
            f'groups={self.groups}', f'dyscope={self.dyscope}'
        ]
        if self.scope_factor != 0.25:
            args.append(f'scope_factor={self.scope_factor}')
        if self.init_mode != 'bilinear':
            args.append(f'init_mode={self.init_mode!r}')
        if self.hard_scope:
            args.append('hard_scope=True')
        if self.scope_bias:
            args.append('scope_bias=True')
        return ', '.join(args)


#: The paper's four variants (Sec. 3.2, "DySample Series").
DYSAMPLE_PRESETS: Dict[str, Dict[str, Any]] = {
    'DySample': dict(style='lp', groups=4, dyscope=False),
    'DySample+': dict(style='lp', groups=4, dyscope=True),
    'DySample-S': dict(style='pl', groups=8, dyscope=False),
    'DySample-S+': dict(style='pl', groups=8, dyscope=True),
}


def _make_preset(name: str):
    preset = DYSAMPLE_PRESETS[name]

    def build(in_channels: int, scale_factor: int = 2, **kwargs) -> DySample:
        return DySample(in_channels, scale_factor, **{**preset, **kwargs})

    build.__name__ = build.__qualname__ = 'build_' + name.replace(
        '+', '_plus').replace('-', '_')
    build.__doc__ = (f'Build the {name} preset ({preset}); keyword arguments '
                     f'override its defaults. See :class:`DySample`.')
    return build


for _name in DYSAMPLE_PRESETS:
    if _name != 'DySample':  # the class itself carries these defaults
        MODELS.register_module(_name, module=_make_preset(_name))
