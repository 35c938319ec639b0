# Copyright (c) mmdysample contributors. All rights reserved.
"""DeepLabV3+'s decode head with a learnable decoder upsampling step."""
from typing import Optional, Sequence

import torch
from mmseg.models.decode_heads import ASPPHead, DepthwiseSeparableASPPHead
from mmseg.registry import MODELS
from torch import Tensor

from ..builder import UpsampleConfig
from ..checks import check_int
from ..steps import UpsampleSteps, is_learnable, slots_of


@MODELS.register_module()
class DySampleDepthwiseSeparableASPPHead(UpsampleSteps,
                                         DepthwiseSeparableASPPHead):
    """DeepLabV3+ head whose decoder upsampling can be a learnable layer.

    A drop-in for mmseg's
    :class:`~mmseg.models.decode_heads.DepthwiseSeparableASPPHead`
    (`DeepLabV3+ <https://arxiv.org/abs/1802.02611>`_): every argument keeps
    its meaning and default and the state-dict keys are kept, so a config
    changes only ``type`` and ``upsample_cfg``::

        decode_head=dict(type='DySampleDepthwiseSeparableASPPHead',
                         upsample_cfg='DySample')

    The stock head resizes the ASPP output bilinearly to the size of the
    low-level ``c1`` features (``inputs[0]``, stride 4) and concatenates it
    with their 1x1 projection ``c1_bottleneck``. That one step is what
    ``upsample_cfg`` decides:

    - None (the default) keeps the stock head: its very forward, the same
      output bit for bit and the same state-dict keys.
    - a name or a dict with ``type`` builds one upsampler with
      :func:`~mmdysample.models.build_upsampler` (``in_channels=channels``,
      ``scale_factor=upsample_scale``): x2 where the backbone's output
      stride is 8 (the ``-d8`` configs, 49 of mmseg's 51), x4 at output
      stride 16. Its result is fitted to ``c1``'s size with
      :func:`~mmdysample.models.align.fit_to_size`.

    An upsampler that reads a guide (FADE, SAPA-B, IndexNet, A2U,
    FreqFusion) is guided by the ``c1`` features themselves (``inputs[0]``,
    ``c1_in_channels`` wide: 256 for ResNet), not by their 48-channel
    projection, which A2U's and SAPA-B's GroupNorm(32) do not divide. A
    guided upsampler that cannot read a guide of that width (FreqFusion
    adds its guide to its output, so it needs the guide at the upsampled
    width; GroupNorm(32) on narrow ``c1`` features) reads them brought to
    ``channels`` by a 1x1 ``ConvModule`` with the head's conv / norm / act
    configs, ``upsample_guide``, built for it only and counted with it.

    With ``c1_in_channels=0`` there is no decoder and no step: a learnable
    ``upsample_cfg`` is then a ``ValueError``. The upsampler's parameters
    are ``upsample_modules.0.*`` (and ``upsample_guide.*``); they keep
    their own initialisation, and building or initialising them draws
    nothing from the global RNG
    (:class:`~mmdysample.models.steps.UpsampleSteps`).

    Shapes: ``inputs[0]`` ``(N, c1_in_channels, H_1, W_1)`` and
    ``inputs[in_index]`` ``(N, in_channels, H, W)`` -> logits
    ``(N, num_classes, H_1, W_1)``.

    Args:
        c1_in_channels (int): Channels of the ``c1`` features
            (``inputs[0]``); 0: no decoder.
        c1_channels (int): Channels of their projection.
        upsample_cfg (str | dict, optional): The decoder's upsampler, see
            above. Defaults to None.
        upsample_scale (int): Its ``scale_factor``: the ratio of ``c1``'s
            size to the ASPP output's. Defaults to 2 (output stride 8).
        **kwargs: Arguments of ``ASPPHead`` / ``BaseDecodeHead``:
            ``in_channels``, ``channels``, ``dilations``, ``num_classes``,
            ``norm_cfg``, ``align_corners``, ...

    Raises:
        ValueError: A learnable ``upsample_cfg`` with ``c1_in_channels=0``,
            or ``upsample_scale`` below 2.
        TypeError: ``upsample_cfg`` is neither None, a str nor a dict.

    Example:
        >>> import torch
        >>> head = DySampleDepthwiseSeparableASPPHead(
        ...     c1_in_channels=8, c1_channels=4, in_channels=32, channels=16,
        ...     num_classes=3, dilations=(1, 2), upsample_cfg='DySample')
        >>> feats = [torch.rand(1, 8, 33, 43), torch.rand(1, 32, 17, 22)]
        >>> head(feats).shape
        torch.Size([1, 3, 33, 43])
    """

    def __init__(self,
                 c1_in_channels: int,
                 c1_channels: int,
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 upsample_scale: int = 2,
                 **kwargs) -> None:
        learnable = is_learnable(upsample_cfg)
        if learnable and c1_in_channels == 0:
            raise ValueError(
                'c1_in_channels=0: the head has no decoder, hence no '
                f'upsampling step for upsample_cfg={upsample_cfg!r}; set '
                'c1_in_channels (and c1_channels) or leave upsample_cfg '
                'None')
        super().__init__(
            c1_in_channels=c1_in_channels, c1_channels=c1_channels, **kwargs)
        self.upsample_cfg = upsample_cfg
        self.upsample_scale = check_int('upsample_scale', upsample_scale, 2)
        self.upsample_modules = None
        self.upsample_guide = None
        if not learnable:
            return
        self.upsample_modules, guides = self.build_guided_steps(
            upsample_cfg,
            self.channels, [self.upsample_scale],
            guide_channels=[c1_in_channels],
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        if guides is not None:
            self.upsample_guide = guides[0]

    def upsample_slots(self) -> list:
        """``upsample_modules[0]`` (the ASPP output to ``c1``'s size) and,
        where there is one, ``upsample_guide``."""
        slots = slots_of(self.upsample_modules)
        if self.upsample_guide is not None:
            slots.append((self, 'upsample_guide'))
        return slots

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(N, num_classes, H_1, W_1)`` at ``c1``'s size."""
        if self.upsample_modules is None:
            return super().forward(inputs)
        # ASPP, image pooling and bottleneck, as mmseg computes them.
        output = ASPPHead._forward_feature(self, inputs)
        c1_output = self.c1_bottleneck(inputs[0])
        guide = inputs[0]
        if self.upsample_guide is not None:
            guide = self.upsample_guide(guide)
        output = self.upsample_step(
            self.upsample_modules[0],
            output,
            guide=guide,
            size=c1_output.shape[2:],
            step=0,
            align_corners=self.align_corners)
        output = torch.cat([output, c1_output], dim=1)
        output = self.sep_bottleneck(output)
        return self.cls_seg(output)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, upsample_cfg='
                f'{self.upsample_cfg!r}, upsample_scale={self.upsample_scale}')
