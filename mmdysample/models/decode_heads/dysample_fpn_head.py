# Copyright (c) mmdysample contributors. All rights reserved.
"""Semantic FPN's decode head with learnable x2 steps in its scale heads."""
from typing import List, Optional, Sequence, Tuple

from mmseg.models.decode_heads import FPNHead
from mmseg.models.utils import Upsample
from mmseg.registry import MODELS
from torch import Tensor

from ..align import fit_to_size
from ..builder import UpsampleConfig, upsampler_type
from ..guide import needs_guide
from ..steps import UpsampleSteps, is_learnable


@MODELS.register_module()
class DySampleFPNHead(UpsampleSteps, FPNHead):
    """Semantic FPN head whose x2 steps can be learnable upsamplers.

    A drop-in for mmseg's :class:`~mmseg.models.decode_heads.FPNHead`
    (`Semantic FPN <https://arxiv.org/abs/1901.02446>`_): every argument
    keeps its meaning and default and the convolutions keep their
    state-dict keys, so a config changes only ``type`` and
    ``upsample_cfg``::

        decode_head=dict(type='DySampleFPNHead', upsample_cfg='DySample')

    The stock head brings level ``i`` (stride ``feature_strides[i]``) to the
    finest level through ``scale_heads[i]``: ``i`` blocks of (3x3
    ``ConvModule``, x2 bilinear ``Upsample``) on a 2x pyramid, then sums the
    levels (a final bilinear resize fixes rounding) and classifies.
    ``upsample_cfg`` decides those x2 steps (1 + 2 + 3 = 6 on four levels):

    - None (the default) keeps the stock head: its very forward, the same
      output bit for bit and the same state-dict keys.
    - a name or a dict with ``type`` replaces each ``Upsample`` *in place*
      by an upsampler built with :func:`~mmdysample.models.build_upsampler`
      (``in_channels=channels``, ``scale_factor=2``), so the convolutions
      keep their keys (``scale_heads.3.2.conv.weight``) and the upsamplers
      take the ``Upsample`` entries' (``scale_heads.3.1.offset.weight``:
      the first step of the 1/32 branch). After each step the map is fitted
      to the size of the input level at that stride with
      :func:`~mmdysample.models.align.fit_to_size`.

    An upsampler that reads a guide is guided by the head's own map of the
    level at the resolution its step produces: ``scale_heads[j][0]``'s
    output, the input level ``j`` (an FPN output, 256 channels in the zoo)
    after the first 3x3 ``ConvModule`` of its branch, ``channels`` wide. The
    1/32 branch is guided by the 1/16, 1/8 and 1/4 levels in turn, each
    step then has the form of an FPN step (guide and upsampled map of one
    width), and every guided upsampler builds with its defaults (FreqFusion
    adds the guide to its output and needs that width; the raw 256-channel
    levels would not do). A step whose stride has no input level (strides
    not 2x apart) has no guide: a guided upsampler is then a
    ``ValueError``.

    The upsamplers keep their own initialisation, and building or
    initialising them draws nothing from the global RNG
    (:class:`~mmdysample.models.steps.UpsampleSteps`).

    Shapes: levels ``(N, in_channels[i], H_i, W_i)``, fine to coarse ->
    logits ``(N, num_classes, H_0, W_0)``.

    Args:
        feature_strides (tuple[int]): Strides of the input levels, finest
            first (powers of 2).
        upsample_cfg (str | dict, optional): The x2 upsampler of every
            step, see above. Defaults to None.
        **kwargs: Arguments of ``FPNHead`` / ``BaseDecodeHead``:
            ``in_channels``, ``in_index``, ``channels``, ``num_classes``,
            ``norm_cfg``, ``align_corners``, ...

    Attributes:
        upsample_positions (tuple): ``(i, j, level)`` per step:
            ``scale_heads[i][j]`` is the upsampler, ``level`` the input
            level of its resolution (whose map guides it), or None.

    Example:
        >>> import torch
        >>> head = DySampleFPNHead(
        ...     feature_strides=[4, 8, 16, 32], in_channels=[8, 8, 8, 8],
        ...     in_index=[0, 1, 2, 3], channels=16, num_classes=3,
        ...     upsample_cfg='DySample')
        >>> [(i, j) for i, j, _ in head.upsample_positions]
        [(1, 1), (2, 1), (2, 3), (3, 1), (3, 3), (3, 5)]
        >>> feats = [torch.rand(1, 8, 33 // 2**i + 1, 43 // 2**i + 1)
        ...          for i in range(4)]
        >>> head(feats).shape
        torch.Size([1, 3, 34, 44])
    """

    def __init__(self,
                 feature_strides: Sequence[int],
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 **kwargs) -> None:
        super().__init__(feature_strides=feature_strides, **kwargs)
        self.upsample_cfg = upsample_cfg
        self.upsample_positions: Tuple[Tuple[int, int, Optional[int]],
                                       ...] = ()
        if not is_learnable(upsample_cfg):
            return
        positions = self._step_positions()
        self._check_guides(upsample_cfg, positions)
        layers = self.build_steps(upsample_cfg, self.channels,
                                  [2] * len(positions))
        for (i, j, _), layer in zip(positions, layers):
            self.scale_heads[i][j] = layer
        self.upsample_positions = tuple(positions)

    def _step_positions(self) -> List[Tuple[int, int, Optional[int]]]:
        """Where the stock ``Upsample`` entries are, and the input level of
        the resolution each produces."""
        strides = list(self.feature_strides)
        positions = []
        for i, scale_head in enumerate(self.scale_heads):
            stride = strides[i]
            for j, module in enumerate(scale_head):
                if isinstance(module, Upsample):
                    stride //= 2
                    positions.append(
                        (i, j,
                         strides.index(stride) if stride in strides else None))
        return positions

    def _check_guides(self, upsample_cfg: UpsampleConfig,
                      positions: list) -> None:
        layer_type = upsampler_type(upsample_cfg)
        if not needs_guide(layer_type):
            return
        for i, j, level in positions:
            if level is None:
                raise ValueError(
                    f'{type(self).__name__}: step {j // 2} of scale head {i} '
                    'upsamples to a stride where no input level is '
                    f'(feature_strides={list(self.feature_strides)}), so the '
                    f'guided upsampler {upsample_cfg!r} has no guide there')

    def upsample_slots(self) -> list:
        """``scale_heads[i][j]`` for each ``(i, j, _)`` of
        :attr:`upsample_positions`."""
        return [(self.scale_heads[i], str(j))
                for i, j, _ in self.upsample_positions]

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(N, num_classes, H_0, W_0)``."""
        if not self.upsample_positions:
            return super().forward(inputs)
        x = self._transform_inputs(inputs)
        # each level after the first conv of its branch: the guides
        embeds = [head[0](level) for head, level in zip(self.scale_heads, x)]
        output = self._scale_head(0, embeds)
        for i in range(1, len(self.feature_strides)):
            # already at level 0's size on a 2x pyramid: no resize then
            output = output + fit_to_size(
                self._scale_head(i, embeds), output.shape[2:], 'bilinear',
                self.align_corners)
        return self.cls_seg(output)

    def _scale_head(self, i: int, embeds: List[Tensor]) -> Tensor:
        """The rest of ``scale_heads[i]`` on ``embeds[i]``, each step with
        its guide."""
        steps = {j: level for head, j, level in self.upsample_positions
                 if head == i}
        out = embeds[i]
        for j, module in enumerate(self.scale_heads[i]):
            if j == 0:
                continue
            if j not in steps:
                out = module(out)
                continue
            guide = None if steps[j] is None else embeds[steps[j]]
            out = self.upsample_step(
                module,
                out,
                guide=guide,
                size=None if guide is None else guide.shape[2:],
                step=f'{i}.{j // 2}',
                align_corners=self.align_corners)
        return out

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, '
                f'upsample_cfg={self.upsample_cfg!r}')
