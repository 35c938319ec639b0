# Copyright (c) mmdysample contributors. All rights reserved.
"""RTMDet's and YOLOX's path aggregation necks with learnable top-down steps.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.necks import CSPNeXtPAFPN, YOLOXPAFPN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import ModuleList
from torch import Tensor

from ..builder import upsampler_type
from ..steps import UpsampleSteps, slots_of

#: The stock necks' ``upsample_cfg``: ``nn.Upsample`` keyword arguments.
STOCK_UPSAMPLE = dict(scale_factor=2, mode='nearest')


def is_learnable_pafpn(upsample_cfg: Union[str, dict]) -> bool:
    """Whether a PAFPN's ``upsample_cfg`` names upsampling layers (a name or
    a dict with ``type``) rather than ``nn.Upsample`` keyword arguments (a
    dict without ``type``, mmdet's form).

    Raises:
        TypeError: ``upsample_cfg`` is neither a str nor a dict.

    Example:
        >>> is_learnable_pafpn(dict(scale_factor=2, mode='nearest'))
        False
        >>> is_learnable_pafpn('DySample'), is_learnable_pafpn(
        ...     dict(type='DySample', groups=2))
        (True, True)
    """
    if isinstance(upsample_cfg, str):
        return True
    if isinstance(upsample_cfg, dict):
        return 'type' in upsample_cfg
    raise TypeError('upsample_cfg must be a str or a dict, got '
                    f'{type(upsample_cfg).__name__}: {upsample_cfg!r}')


def refuse_merged_cfg(upsample_cfg: Union[str, dict]) -> None:
    """Refuse an upsampler config merged with ``nn.Upsample`` arguments.

    mmdet's YOLOX configs set ``upsample_cfg=dict(scale_factor=2,
    mode='nearest')``; a config that inherits one and overrides it with
    ``dict(type='DySample')`` gets the merged dict, whose ``mode`` the
    upsampler does not take.

    Raises:
        ValueError: ``upsample_cfg`` has a ``type`` other than an
            ``nn.Upsample`` one and a ``mode`` or ``size``.

    Example:
        >>> refuse_merged_cfg(dict(type='nearest', mode='nearest'))
        >>> refuse_merged_cfg(dict(type='DySample', mode='nearest'))
        Traceback (most recent call last):
        ...
        ValueError: upsample_cfg={'type': 'DySample', 'mode': 'nearest'} ...
    """
    if not isinstance(upsample_cfg, dict) or 'type' not in upsample_cfg:
        return
    stray = [key for key in ('mode', 'size') if key in upsample_cfg]
    if stray and upsampler_type(upsample_cfg) is not nn.Upsample:
        raise ValueError(
            f'upsample_cfg={upsample_cfg!r} mixes an upsampler type with '
            f'nn.Upsample arguments {stray}: a config that inherits mmdet\'s '
            'YOLOX neck (upsample_cfg=dict(scale_factor=2, mode=\'nearest\'))'
            ' merges the two dicts. Name the upsampler instead '
            '(upsample_cfg=\'DySample\') or add _delete_=True to the dict')


class LearnablePAFPN(UpsampleSteps):
    """The top-down path shared by the two PAFPN hosts below.

    Top-down step ``i`` (coarse to fine: ``i = len(in_channels) - 2, ...,
    0``) reduces the coarser map to ``in_channels[i]`` channels, upsamples
    it and concatenates it with ``inputs[i]`` before a CSP block. The stock
    necks share one ``nn.Upsample`` between the steps; here step ``i`` has
    its own upsampler, ``upsample_modules[i]``, built at ``in_channels[i]``
    channels (the steps differ), and an upsampler that reads a guide gets
    ``inputs[i]``, the finer backbone level. The result is fitted to
    ``inputs[i]``'s size before the concatenation (the stock neck fails
    there when the sizes are not exactly 2x apart: a 600 x 1000 image
    through a stride-32 backbone gives 75 x 125 over 38 x 63).

    ``upsample_cfg`` decides the two top-down x2 steps:

    - a dict without ``type`` (mmdet's form, ``nn.Upsample`` keyword
      arguments, as all of mmdet's YOLOX configs pass) keeps the stock neck:
      its very forward with the one shared ``self.upsample``, the same
      output bit for bit and the same state-dict keys.
    - a name (``'DySample'``) or a dict with ``type`` builds one upsampler
      per step with :func:`~mmdysample.models.build_upsampler` at that
      step's channels (``in_channels[i]``; 128 and 256 for the ``-s``
      models), ``scale_factor=2``, and for a guided one (FADE, SAPA-B,
      IndexNet, A2U, FreqFusion) ``guide_channels=in_channels[i]``: it
      reads ``inputs[i]``, the finer backbone level. The upsampled map is
      fitted to that level's size with
      :func:`~mmdysample.models.align.fit_to_size` (crop of the rounding
      pixel, bilinear resize otherwise) before the concatenation.

    The upsamplers keep their own initialisation: the neck's ``init_cfg``
    (Kaiming on every ``Conv2d``) is applied with them hidden, then each
    upsampler's ``init_weights`` (DySample's ``N(0, 0.001)`` offset conv
    would otherwise become a Kaiming one), and neither building nor
    initialising them draws from the global RNG
    (:class:`~mmdysample.models.steps.UpsampleSteps`). Their parameters
    are ``upsample_modules.{i}.*``, step ``i`` bringing level ``i + 1`` to
    level ``i``.

    Shapes: ``inputs[k]`` ``(N, in_channels[k], H_k, W_k)`` with
    ``H_{k+1} = ceil(H_k / 2)`` -> ``(N, out_channels, H_k, W_k)`` per
    level. The stock path needs ``H_k = 2 H_{k+1}`` exactly.
    """

    def _build_upsamplers(self, upsample_cfg: Union[str, dict]) -> None:
        self.upsample_cfg = (
            upsample_cfg.copy()
            if isinstance(upsample_cfg, dict) else upsample_cfg)
        self.upsample_modules: Optional[ModuleList] = None
        refuse_merged_cfg(upsample_cfg)
        if is_learnable_pafpn(upsample_cfg):
            # the stock shared nn.Upsample is not used on this path
            self.upsample = None
            # the steps' channels differ: one per step
            self.upsample_modules = self.build_steps(
                upsample_cfg, list(self.in_channels[:-1]),
                [2] * (len(self.in_channels) - 1))

    def upsample_slots(self) -> list:
        """``upsample_modules[i]``: the step from level ``i + 1`` to ``i``.
        """
        return slots_of(self.upsample_modules)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Aggregate the levels top-down, then bottom-up.

        Args:
            inputs (Sequence[Tensor]): ``(N, in_channels[k], H_k, W_k)``,
                fine to coarse, ``H_{k+1} = ceil(H_k / 2)``.

        Returns:
            tuple[Tensor]: ``(N, out_channels, H_k, W_k)`` per level.

        Raises:
            ValueError: The number of inputs is not ``len(in_channels)``, or
                a guide does not fit its step (naming the host and the
                step).
        """
        if self.upsample_modules is None:
            return super().forward(inputs)
        num_levels = len(self.in_channels)
        if len(inputs) != num_levels:
            raise ValueError(
                f'{type(self).__name__} expects {num_levels} inputs '
                f'(in_channels={list(self.in_channels)}), got {len(inputs)}')

        inner_outs = [inputs[-1]]
        for idx in range(num_levels - 1, 0, -1):
            block = num_levels - 1 - idx  # the stock blocks run coarse-first
            feat_high = self.reduce_layers[block](inner_outs[0])
            inner_outs[0] = feat_high
            feat_low = inputs[idx - 1]
            upsampled = self.upsample_step(
                self.upsample_modules[idx - 1],
                feat_high,
                guide=feat_low,
                size=feat_low.shape[2:],
                step=idx - 1)
            inner_outs.insert(
                0, self.top_down_blocks[block](torch.cat([upsampled, feat_low],
                                                         1)))

        # From here on as mmdet's forward, which cannot be reused because
        # its top-down path calls the shared ``self.upsample``.
        outs = [inner_outs[0]]
        for idx in range(num_levels - 1):
            downsampled = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat(
                [downsampled, inner_outs[idx + 1]], 1)))
        return tuple(conv(out) for conv, out in zip(self.out_convs, outs))

    def extra_repr(self) -> str:
        return f'upsample_cfg={self.upsample_cfg!r}'


@MODELS.register_module()
class DySampleCSPNeXtPAFPN(LearnablePAFPN, CSPNeXtPAFPN):
    """RTMDet's CSPNeXtPAFPN whose top-down steps take any upsampler.

    A drop-in for mmdet's :class:`~mmdet.models.necks.CSPNeXtPAFPN`
    (`RTMDet <https://arxiv.org/abs/2212.07784>`_): every argument keeps its
    meaning and default, so a config changes only ``type`` and
    ``upsample_cfg``::

        neck=dict(type='DySampleCSPNeXtPAFPN', upsample_cfg='DySample')

    ``upsample_cfg`` decides the two top-down steps as described in
    :class:`LearnablePAFPN`: ``nn.Upsample`` keyword arguments keep the
    stock neck bit for bit; a name or a dict with ``type`` builds one
    upsampler per step at that step's channels.

    Args:
        in_channels (Sequence[int]): Number of input channels per scale.
        out_channels (int): Number of output channels (used at each scale).
        num_csp_blocks (int): Number of bottlenecks in CSPLayer.
            Defaults to 3.
        use_depthwise (bool): Whether to use depthwise separable convolution
            in blocks. Defaults to False.
        expand_ratio (float): Ratio to adjust the number of channels of the
            hidden layer. Defaults to 0.5.
        upsample_cfg (str | dict): The top-down upsampling, see above.
            Defaults to ``dict(scale_factor=2, mode='nearest')``.
        conv_cfg (dict, optional): Config dict for convolution layer.
            Defaults to None, which means using conv2d.
        norm_cfg (dict): Config dict for normalization layer.
            Defaults to ``dict(type='BN', momentum=0.03, eps=0.001)``.
        act_cfg (dict): Config dict for activation layer.
            Defaults to ``dict(type='Swish')``.
        init_cfg (dict or list[dict], optional): Initialization config dict.
            Defaults to Kaiming (uniform, ``a=sqrt(5)``) on every Conv2d.

    Raises:
        TypeError: ``upsample_cfg`` is neither a str nor a dict.
        KeyError: ``upsample_cfg`` names no registered upsampler.
        ValueError: ``upsample_cfg`` mixes a ``type`` with ``nn.Upsample``
            arguments (see :func:`refuse_merged_cfg`).

    Example:
        >>> import torch
        >>> neck = DySampleCSPNeXtPAFPN([8, 16, 32], 8, num_csp_blocks=1,
        ...                             upsample_cfg='DySample')
        >>> [m.in_channels for m in neck.upsample_modules]
        [8, 16]
        >>> sizes = [(75, 125), (38, 63), (19, 32)]  # a 600 x 1000 image
        >>> inputs = [torch.rand(1, c, h, w)
        ...           for c, (h, w) in zip([8, 16, 32], sizes)]
        >>> [tuple(out.shape) for out in neck(inputs)]
        [(1, 8, 75, 125), (1, 8, 38, 63), (1, 8, 19, 32)]
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_csp_blocks: int = 3,
                 use_depthwise: bool = False,
                 expand_ratio: float = 0.5,
                 upsample_cfg: Union[str, ConfigType] = dict(
                     scale_factor=2, mode='nearest'),
                 conv_cfg: Optional[ConfigType] = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='Swish'),
                 init_cfg: OptMultiConfig = dict(
                     type='Kaiming',
                     layer='Conv2d',
                     a=math.sqrt(5),
                     distribution='uniform',
                     mode='fan_in',
                     nonlinearity='leaky_relu')) -> None:
        learnable = is_learnable_pafpn(upsample_cfg)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            num_csp_blocks=num_csp_blocks,
            use_depthwise=use_depthwise,
            expand_ratio=expand_ratio,
            upsample_cfg=STOCK_UPSAMPLE if learnable else upsample_cfg,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        self._build_upsamplers(upsample_cfg)


@MODELS.register_module()
class DySampleYOLOXPAFPN(LearnablePAFPN, YOLOXPAFPN):
    """YOLOX's PAFPN whose top-down steps take any upsampler.

    A drop-in for mmdet's :class:`~mmdet.models.necks.YOLOXPAFPN`
    (`YOLOX <https://arxiv.org/abs/2107.08430>`_): every argument keeps its
    meaning and default, so a config changes only ``type`` and
    ``upsample_cfg``::

        neck=dict(type='DySampleYOLOXPAFPN', upsample_cfg='DySample')

    ``upsample_cfg`` decides the two top-down steps as described in
    :class:`LearnablePAFPN`: ``nn.Upsample`` keyword arguments keep the
    stock neck bit for bit; a name or a dict with ``type`` builds one
    upsampler per step at that step's channels.

    Args:
        in_channels (list[int]): Number of input channels per scale.
        out_channels (int): Number of output channels (used at each scale).
        num_csp_blocks (int): Number of bottlenecks in CSPLayer.
            Defaults to 3.
        use_depthwise (bool): Whether to use depthwise separable convolution
            in blocks. Defaults to False.
        upsample_cfg (str | dict): The top-down upsampling, see above.
            Defaults to ``dict(scale_factor=2, mode='nearest')``.
        conv_cfg (dict, optional): Config dict for convolution layer.
            Defaults to None, which means using conv2d.
        norm_cfg (dict): Config dict for normalization layer.
            Defaults to ``dict(type='BN', momentum=0.03, eps=0.001)``.
        act_cfg (dict): Config dict for activation layer.
            Defaults to ``dict(type='Swish')``.
        init_cfg (dict or list[dict], optional): Initialization config dict.
            Defaults to Kaiming (uniform, ``a=sqrt(5)``) on every Conv2d.

    Raises:
        TypeError: ``upsample_cfg`` is neither a str nor a dict.
        KeyError: ``upsample_cfg`` names no registered upsampler.
        ValueError: ``upsample_cfg`` mixes a ``type`` with ``nn.Upsample``
            arguments (see :func:`refuse_merged_cfg`).

    Example:
        >>> import torch
        >>> neck = DySampleYOLOXPAFPN([8, 16, 32], 8, num_csp_blocks=1,
        ...                           upsample_cfg='DySample+')
        >>> inputs = [torch.rand(1, c, 20 // 2**i, 24 // 2**i)
        ...           for i, c in enumerate([8, 16, 32])]
        >>> [tuple(out.shape) for out in neck(inputs)]
        [(1, 8, 20, 24), (1, 8, 10, 12), (1, 8, 5, 6)]
    """

    def __init__(self,
                 in_channels: List[int],
                 out_channels: int,
                 num_csp_blocks: int = 3,
                 use_depthwise: bool = False,
                 upsample_cfg: Union[str, ConfigType] = dict(
                     scale_factor=2, mode='nearest'),
                 conv_cfg: Optional[ConfigType] = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='Swish'),
                 init_cfg: OptMultiConfig = dict(
                     type='Kaiming',
                     layer='Conv2d',
                     a=math.sqrt(5),
                     distribution='uniform',
                     mode='fan_in',
                     nonlinearity='leaky_relu')) -> None:
        learnable = is_learnable_pafpn(upsample_cfg)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            num_csp_blocks=num_csp_blocks,
            use_depthwise=use_depthwise,
            upsample_cfg=STOCK_UPSAMPLE if learnable else upsample_cfg,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        self._build_upsamplers(upsample_cfg)
