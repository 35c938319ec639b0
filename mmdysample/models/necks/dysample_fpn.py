# Copyright (c) mmdysample contributors. All rights reserved.
"""An mmdet ``FPN`` whose top-down upsampling can be a learnable layer.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085
"""
from typing import List, Optional, Tuple, Union

import torch.nn.functional as F
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, MultiConfig, OptConfigType
from mmengine.model import ModuleList
from torch import Tensor

from ..steps import UpsampleSteps, slots_of


@MODELS.register_module()
class DySampleFPN(UpsampleSteps, FPN):
    """FPN whose top-down path upsamples with any registered upsampler.

    A drop-in for mmdet's :class:`~mmdet.models.necks.FPN`: every argument
    keeps its meaning and default, and the lateral / output convolutions
    keep their state-dict keys, so a config changes only ``type`` and
    ``upsample_cfg``::

        neck=dict(type='DySampleFPN', upsample_cfg='DySample', ...)

    ``upsample_cfg`` decides the top-down upsampling:

    - a dict without ``type`` (mmdet's form, e.g. ``dict(mode='nearest')``,
      ``dict(mode='bilinear', align_corners=False)``, ``dict(scale_factor=2)``)
      keeps the stock FPN: ``F.interpolate`` with those arguments, through
      the very same forward code, so outputs equal ``FPN``'s bit for bit.
    - a name (``'DySample+'``) or a dict with ``type``
      (``dict(type='DySample', groups=2)``) builds one learnable upsampler
      per top-down stage with :func:`~mmdysample.models.build_upsampler`
      (``in_channels=out_channels``, ``scale_factor=2``). Anything in the
      mmengine root ``MODELS`` registry that it can build works: the
      DySample family, mmcv's ``'nearest'``, ``'bilinear'``, ``'deconv'``,
      ``'pixel_shuffle'``, ``'carafe'``, and upsamplers of other packages.
      Stage ``i`` computes
      ``laterals[i] = laterals[i] + up_i(laterals[i + 1])``, or, for an
      upsampler that reads a guide (FADE, SAPA-B, IndexNet, A2U; see
      :mod:`~mmdysample.models.guide`), ``up_i(laterals[i + 1],
      laterals[i])``: the finer lateral after its 1x1 conv, before the
      addition; when the
      upsampled map is not the lateral's size (inputs not divisible by the
      total stride) it is fitted with :func:`fit_to_size` (crop of the
      rounding pixel, bilinear resize otherwise).

    The upsamplers keep their own initialisation: the neck's ``init_cfg``
    (Xavier on every ``Conv2d``) is applied with them hidden, and would
    otherwise turn DySample's ``N(0, 0.001)`` offset convolution into an
    ``std ~ 0.3`` one (a bug of the upstream DySample detection code); then
    each upsampler's ``init_weights`` runs, then a ``Pretrained``
    ``init_cfg``. Neither building nor initialising the upsamplers draws
    from the global RNG (:class:`~mmdysample.models.steps.UpsampleSteps`).

    Args:
        in_channels (list[int]): Number of input channels per scale.
        out_channels (int): Number of output channels (used at each scale).
        num_outs (int): Number of output scales.
        start_level (int): Index of the start input backbone level used to
            build the feature pyramid. Defaults to 0.
        end_level (int): Index of the end input backbone level (inclusive)
            used to build the feature pyramid. Defaults to -1, which means
            the last level.
        add_extra_convs (bool | str): Source of the extra levels' stride-2
            convolutions: ``'on_input'`` (``True``), ``'on_lateral'`` or
            ``'on_output'``; ``False`` adds max-pooled levels instead.
            Defaults to False.
        relu_before_extra_convs (bool): Whether to apply relu before the
            extra convs after the first one. Defaults to False.
        no_norm_on_lateral (bool): Whether to skip the norm on the lateral
            convs. Defaults to False.
        conv_cfg (:obj:`ConfigDict` or dict, optional): Config dict for
            convolution layers. Defaults to None.
        norm_cfg (:obj:`ConfigDict` or dict, optional): Config dict for
            normalization layers. Defaults to None.
        act_cfg (:obj:`ConfigDict` or dict, optional): Config dict for
            activation layers in ConvModule. Defaults to None.
        upsample_cfg (str | :obj:`ConfigDict` | dict): The top-down
            upsampling, see above. Defaults to ``dict(mode='nearest')``.
        init_cfg (:obj:`ConfigDict` or dict or list[:obj:`ConfigDict` or \
            dict]): Initialization config dict. Defaults to
            ``dict(type='Xavier', layer='Conv2d', distribution='uniform')``.

    Attributes:
        upsample_modules (ModuleList | None): The learnable upsamplers, one
            per top-down stage (``len(lateral_convs) - 1`` of them); index
            ``i`` upsamples level ``i + 1`` to level ``i``. ``None`` with an
            mmdet-style ``upsample_cfg``.

    Shapes:
        ``inputs[k]``: ``(N, in_channels[k], H_k, W_k)`` with
        ``H_{k+1} = ceil(H_k / 2)`` (any sizes work; see
        :func:`fit_to_size`). Output ``j``:
        ``(N, out_channels, H_{start_level + j}, W_{start_level + j})``,
        extra levels halving (``ceil``) the last one.

    Example:
        >>> import torch
        >>> in_channels = [8, 16, 32, 64]
        >>> sizes = [(37, 45), (19, 23), (10, 12), (5, 6)]
        >>> inputs = [torch.rand(2, c, h, w)
        ...           for c, (h, w) in zip(in_channels, sizes)]
        >>> neck = DySampleFPN(in_channels, 16, num_outs=5,
        ...                    upsample_cfg='DySample')
        >>> len(neck.upsample_modules)
        3
        >>> for out in neck(inputs):
        ...     print(tuple(out.shape))
        (2, 16, 37, 45)
        (2, 16, 19, 23)
        (2, 16, 10, 12)
        (2, 16, 5, 6)
        (2, 16, 3, 3)
    """

    def __init__(
        self,
        in_channels: List[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: Union[bool, str] = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        conv_cfg: OptConfigType = None,
        norm_cfg: OptConfigType = None,
        act_cfg: OptConfigType = None,
        upsample_cfg: Union[str, ConfigType] = dict(mode='nearest'),
        init_cfg: MultiConfig = dict(
            type='Xavier', layer='Conv2d', distribution='uniform')
    ) -> None:
        if not isinstance(upsample_cfg, (str, dict)):
            raise TypeError('upsample_cfg must be a str or a dict, got '
                            f'{type(upsample_cfg).__name__}: {upsample_cfg!r}')
        # mmdet's own form has no ``type``: those are F.interpolate kwargs.
        learnable = isinstance(upsample_cfg, str) or 'type' in upsample_cfg
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            num_outs=num_outs,
            start_level=start_level,
            end_level=end_level,
            add_extra_convs=add_extra_convs,
            relu_before_extra_convs=relu_before_extra_convs,
            no_norm_on_lateral=no_norm_on_lateral,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            # FPN stores it as interpolate kwargs; ours is kept below.
            upsample_cfg=dict() if learnable else upsample_cfg,
            init_cfg=init_cfg)
        self.upsample_cfg = (
            upsample_cfg if isinstance(upsample_cfg, str) else
            upsample_cfg.copy())

        self.upsample_modules: Optional[ModuleList] = None
        if learnable:
            self.upsample_modules = self.build_steps(
                upsample_cfg, out_channels,
                [2] * (len(self.lateral_convs) - 1))

    def upsample_slots(self) -> list:
        """``upsample_modules[i]``: the step from level ``i + 1`` to ``i``.
        """
        return slots_of(self.upsample_modules)

    def forward(self, inputs: Tuple[Tensor]) -> tuple:
        """Build the feature pyramid.

        Args:
            inputs (tuple[Tensor]): Backbone features, ``inputs[k]`` of shape
                ``(N, in_channels[k], H_k, W_k)``.

        Returns:
            tuple[Tensor]: ``num_outs`` maps of shape
            ``(N, out_channels, H, W)``, finest first.
        """
        if self.upsample_modules is None:
            return super().forward(inputs)
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'DySampleFPN expects {len(self.in_channels)} '
                             f'input levels (in_channels={self.in_channels}), '
                             f'got {len(inputs)}')

        laterals = [
            lateral_conv(inputs[i + self.start_level])
            for i, lateral_conv in enumerate(self.lateral_convs)
        ]

        # Top-down path; not ``+=``, which breaks autograd on the laterals.
        used_backbone_levels = len(laterals)
        for i in range(used_backbone_levels - 1, 0, -1):
            # A guided upsampler reads the finer lateral before the sum.
            laterals[i - 1] = laterals[i - 1] + self.upsample_step(
                self.upsample_modules[i - 1],
                laterals[i],
                guide=laterals[i - 1],
                size=laterals[i - 1].shape[2:],
                step=i - 1,
                mode='bilinear')

        # From here on as mmdet's FPN.forward, which cannot be reused
        # because it rebuilds the laterals itself.
        outs = [
            self.fpn_convs[i](laterals[i]) for i in range(used_backbone_levels)
        ]
        if self.num_outs > len(outs):
            if not self.add_extra_convs:
                # max pool for the extra levels (Faster R-CNN, Mask R-CNN)
                for i in range(self.num_outs - used_backbone_levels):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                # stride-2 convs for the extra levels (RetinaNet)
                if self.add_extra_convs == 'on_input':
                    extra_source = inputs[self.backbone_end_level - 1]
                elif self.add_extra_convs == 'on_lateral':
                    extra_source = laterals[-1]
                else:  # 'on_output'; FPN.__init__ validated the choice
                    extra_source = outs[-1]
                outs.append(self.fpn_convs[used_backbone_levels](extra_source))
                for i in range(used_backbone_levels + 1, self.num_outs):
                    if self.relu_before_extra_convs:
                        outs.append(self.fpn_convs[i](F.relu(outs[-1])))
                    else:
                        outs.append(self.fpn_convs[i](outs[-1]))
        return tuple(outs)
