# Copyright (c) mmdysample contributors. All rights reserved.
"""UPerNet's decode head with learnable top-down upsampling."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmseg.models.decode_heads import UPerHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ..builder import UpsampleConfig
from ..steps import UpsampleSteps, is_learnable, slots_of


@MODELS.register_module()
class DySampleUPerHead(UpsampleSteps, UPerHead):
    """UPerHead whose three top-down steps can be learnable upsamplers.

    A drop-in for mmseg's :class:`~mmseg.models.decode_heads.UPerHead`
    (`UPerNet <https://arxiv.org/abs/1807.10221>`_): every argument keeps
    its meaning and default and the state-dict keys are kept, so a config
    changes only ``type`` and ``upsample_cfg``::

        decode_head=dict(type='DySampleUPerHead', upsample_cfg='DySample')

    The stock head builds an FPN on the backbone levels (the coarsest one
    through the PSP module) and, top-down, adds to each lateral the coarser
    one resized bilinearly to its size. ``upsample_cfg`` decides those steps:

    - None (the default) keeps the stock head: its very forward, the same
      output bit for bit and the same state-dict keys.
    - a name (``'DySample'``) or a dict with ``type`` builds one upsampler
      per top-down step with :func:`~mmdysample.models.build_upsampler`
      (``in_channels=channels``, ``scale_factor=2``), as the DySample
      authors' segmentation code does: ``len(in_channels) - 1`` of them,
      three on a 4-level backbone. Step ``i`` computes
      ``laterals[i] = laterals[i] + up_i(laterals[i + 1])``; an upsampler
      that reads a guide (FADE, SAPA-B, IndexNet, A2U, FreqFusion; see
      :mod:`~mmdysample.models.guide`) gets ``laterals[i]``, the finer
      lateral before the sum. A result that is not the lateral's size
      (levels not exactly 2x apart, as in mmseg's own test, 45 and 21) is
      fitted with :func:`~mmdysample.models.align.fit_to_size` (crop of the
      rounding pixel, else a bilinear resize with the head's
      ``align_corners``).

    The fusion resizes that bring every FPN output to the finest size in
    one step (x2, x4, x8) stay bilinear as in the stock head: two x2 steps
    are not one x4, and the DySample paper changes the top-down path only.

    The upsamplers' parameters are ``upsample_modules.{i}.*``, step ``i``
    bringing level ``i + 1`` to level ``i``. They keep their own
    initialisation, and building or initialising them draws nothing from
    the global RNG (:class:`~mmdysample.models.steps.UpsampleSteps`).

    Shapes: levels ``(N, in_channels[i], H_i, W_i)``, fine to coarse ->
    logits ``(N, num_classes, H_0, W_0)``.

    Args:
        pool_scales (tuple[int]): Pooling scales of the PSP module on the
            coarsest level. Defaults to (1, 2, 3, 6).
        upsample_cfg (str | dict, optional): The top-down x2 upsampler, see
            above. Defaults to None.
        **kwargs: Arguments of ``UPerHead`` / ``BaseDecodeHead``:
            ``in_channels`` (a list), ``in_index``, ``channels``,
            ``num_classes``, ``norm_cfg``, ``align_corners``, ``init_cfg``,
            ...

    Raises:
        TypeError: ``upsample_cfg`` is neither None, a str nor a dict.
        KeyError: ``upsample_cfg`` names no registered upsampler.

    Example:
        >>> import torch
        >>> head = DySampleUPerHead(
        ...     in_channels=[8, 16, 24, 32], in_index=[0, 1, 2, 3],
        ...     channels=16, num_classes=3, upsample_cfg='DySample')
        >>> len(head.upsample_modules)
        3
        >>> feats = [torch.rand(1, c, 33 // 2**i + 1, 43 // 2**i + 1)
        ...          for i, c in enumerate([8, 16, 24, 32])]
        >>> [tuple(f.shape[2:]) for f in feats]
        [(34, 44), (17, 22), (9, 11), (5, 6)]
        >>> head(feats).shape
        torch.Size([1, 3, 34, 44])
    """

    def __init__(self,
                 pool_scales: Tuple[int] = (1, 2, 3, 6),
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 **kwargs) -> None:
        super().__init__(pool_scales=pool_scales, **kwargs)
        self.upsample_cfg = upsample_cfg
        self.upsample_modules = None
        if is_learnable(upsample_cfg):
            self.upsample_modules = self.build_steps(
                upsample_cfg, self.channels, [2] * len(self.lateral_convs))

    def upsample_slots(self) -> list:
        """``upsample_modules[i]``: the step from level ``i + 1`` to ``i``.
        """
        return slots_of(self.upsample_modules)

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """The fused map before ``cls_seg``: ``(N, channels, H_0, W_0)``."""
        if self.upsample_modules is None:
            return super()._forward_feature(inputs)
        inputs = self._transform_inputs(inputs)
        laterals: List[Tensor] = [
            lateral_conv(inputs[i])
            for i, lateral_conv in enumerate(self.lateral_convs)
        ]
        laterals.append(self.psp_forward(inputs))

        for i in range(len(laterals) - 1, 0, -1):
            # A guided upsampler reads the finer lateral before the sum.
            laterals[i - 1] = laterals[i - 1] + self.upsample_step(
                self.upsample_modules[i - 1],
                laterals[i],
                guide=laterals[i - 1],
                size=laterals[i - 1].shape[2:],
                step=i - 1,
                align_corners=self.align_corners)

        # From here on as mmseg's UPerHead: the one-shot fusion resizes.
        fpn_outs = [
            self.fpn_convs[i](laterals[i]) for i in range(len(laterals) - 1)
        ]
        fpn_outs.append(laterals[-1])
        for i in range(len(laterals) - 1, 0, -1):
            fpn_outs[i] = resize(
                fpn_outs[i],
                size=fpn_outs[0].shape[2:],
                mode='bilinear',
                align_corners=self.align_corners)
        return self.fpn_bottleneck(torch.cat(fpn_outs, dim=1))

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, '
                f'upsample_cfg={self.upsample_cfg!r}')
