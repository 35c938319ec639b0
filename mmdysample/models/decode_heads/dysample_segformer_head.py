# Copyright (c) mmdysample contributors. All rights reserved.
"""SegFormer's all-MLP decode head with learnable x2 upsampling stages."""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import ModuleList
from mmseg.models.decode_heads import SegformerHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ..align import fit_to_size
from ..builder import UpsampleConfig
from ..steps import UpsampleSteps, is_learnable, slots_of

#: Ratio between consecutive pyramid levels, hence of each upsampling stage.
STAGE_SCALE = 2


@MODELS.register_module()
class DySampleSegformerHead(UpsampleSteps, SegformerHead):
    """SegFormer head whose bilinear resizes are replaced by x2 upsamplers.

    The stock head (`SegFormer <https://arxiv.org/abs/2105.15203>`_) maps
    each backbone level to ``channels`` channels with a 1x1 conv and resizes
    it to the size of the first (1/4) level in one bilinear step. As in
    DySample (`Liu et al., ICCV 2023 <https://arxiv.org/abs/2308.15085>`_,
    Sec. 4.1), this head instead brings level ``i`` up through ``i``
    successive x2 upsamplers, each built by :func:`build_upsampler` with
    ``in_channels=channels``: the 1/8, 1/16 and 1/32 levels of MiT take 1, 2
    and 3 stages, 3 + 2 + 1 = 6 in all. Any upsampler registered in the
    mmengine root ``MODELS`` works (the DySample presets, mmcv's
    ``'nearest'``, ``'bilinear'``, ``'deconv'``, ``'pixel_shuffle'``,
    ``'carafe'``, ...). The levels are assumed to halve in size from one to
    the next, as MiT's are. An upsampler that reads a guide (FADE, SAPA-B,
    IndexNet, A2U; see :mod:`~mmdysample.models.guide`) gets the level
    embedding (``convs[j]`` output) of the level ``j`` its stage produces:
    the 1/32 branch is guided by the 1/16, 1/8 and 1/4 embeddings in turn,
    as in FADE's SegFormer head.

    Odd input sizes: a stride-2 layer maps ``H`` to ``ceil(H / 2)``, so a x2
    stage can return one row or column more than the next finer level has
    (a 512x683 image gives 1/32 and 1/16 maps of 16x22 and 32x43, and
    16x22 upsamples to 32x44). After every stage the map is cropped at the
    bottom / right to the size of the next finer input map, or resized to it
    (``interpolate_mode``) when it differs by more than that rounding pixel,
    so the fused maps have exactly the first level's size, as in the stock
    head.

    Parameters of the upsamplers are stored as ``upsamplers.{i}.{k}.*``: the
    ``k``-th stage (``k = 0`` first, coarsest) of the branch that starts at
    ``convs.{i}``, i.e. input level ``i``. Level 0 has no stages and no keys,
    so a DySample model has e.g. ``upsamplers.3.2.offset.weight`` (the last
    of the three stages of the 1/32 branch). With ``upsample_cfg=None`` there
    are no such keys and the state dict equals that of ``SegformerHead``.

    The upsamplers keep their own initialisation: :meth:`init_weights`
    applies the head's ``init_cfg`` with them hidden, then every
    upsampler's ``init_weights`` (e.g. DySample's offset convs keep N(0,
    0.001) under an init_cfg that re-initialises all ``Conv2d`` layers); a
    ``Pretrained`` init_cfg is still applied last. Neither building nor
    initialising them draws from the global RNG
    (:class:`~mmdysample.models.steps.UpsampleSteps`).

    Shapes: a sequence of level maps ``(N, in_channels[i], H_i, W_i)`` ->
    logits ``(N, out_channels, H_0, W_0)``.

    Args:
        interpolate_mode (str): Mode of the one-step resize when
            ``upsample_cfg`` is None, and of the fallback resize after an
            upsampling stage. Defaults to ``'bilinear'``.
        upsample_cfg (str | dict, optional): The x2 upsampler of every stage,
            a registered name such as ``'DySample-S+'`` or a dict with
            ``type`` and extra arguments. None keeps the stock one-step
            resize: the head then computes exactly what ``SegformerHead``
            does. Note that ``'bilinear'`` is different: six chained x2
            bilinear stages, not one resize. Defaults to None.
        **kwargs: Arguments of ``SegformerHead`` / ``BaseDecodeHead``:
            ``in_channels`` and ``in_index`` (sequences of equal length),
            ``channels``, ``num_classes``, ``norm_cfg``, ``align_corners``,
            ``init_cfg``, ...

    Raises:
        TypeError: ``in_channels`` or ``in_index`` is not a list or tuple,
            or ``upsample_cfg`` is neither a str, a dict nor None.
        ValueError: ``in_channels`` and ``in_index`` differ in length.
        KeyError: ``upsample_cfg`` names no registered upsampler or has no
            ``type``.

    Example:
        >>> import torch
        >>> from mmdysample.models.decode_heads import DySampleSegformerHead
        >>> head = DySampleSegformerHead(
        ...     in_channels=[8, 16, 24, 32], in_index=[0, 1, 2, 3],
        ...     channels=16, num_classes=3, upsample_cfg='DySample-S')
        >>> feats = [torch.rand(1, c, 32 // 2**i, 43 // 2**i + (i > 0))
        ...          for i, c in enumerate([8, 16, 24, 32])]
        >>> [tuple(f.shape[2:]) for f in feats]
        [(32, 43), (16, 22), (8, 11), (4, 6)]
        >>> head(feats).shape
        torch.Size([1, 3, 32, 43])
        >>> [name for name, _ in head.named_parameters()
        ...  if name.endswith('offset.weight')]
        ['upsamplers.1.0.offset.weight', 'upsamplers.2.0.offset.weight',
         'upsamplers.2.1.offset.weight', 'upsamplers.3.0.offset.weight',
         'upsamplers.3.1.offset.weight', 'upsamplers.3.2.offset.weight']
    """

    def __init__(self,
                 interpolate_mode: str = 'bilinear',
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 **kwargs) -> None:
        _check_levels(kwargs)
        super().__init__(interpolate_mode=interpolate_mode, **kwargs)
        self.upsample_cfg = upsample_cfg
        self.upsamplers = None
        if is_learnable(upsample_cfg):
            self.upsamplers = ModuleList(
                self.build_steps(upsample_cfg, self.channels,
                                 [STAGE_SCALE] * level)
                for level in range(len(self.in_channels)))

    def upsample_slots(self) -> list:
        """``upsamplers[i][k]``: stage ``k`` of the branch of level ``i``.
        """
        if self.upsamplers is None:
            return []
        return [slot for level in self.upsamplers for slot in slots_of(level)]

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Fuse the selected levels at the first level's size and classify.

        Args:
            inputs (Sequence[Tensor]): Backbone levels, fine to coarse; the
                ones at ``in_index`` are used, level ``i`` of shape
                ``(N, in_channels[i], H_i, W_i)``.

        Returns:
            Tensor: Logits of shape ``(N, out_channels, H_0, W_0)``.
        """
        inputs = self._transform_inputs(inputs)
        embeds = [conv(x) for x, conv in zip(inputs, self.convs)]
        outs = []
        for level, x in enumerate(embeds):
            if self.upsamplers is None:
                x = resize(
                    input=x,
                    size=inputs[0].shape[2:],
                    mode=self.interpolate_mode,
                    align_corners=self.align_corners)
            else:
                for stage, upsampler in enumerate(self.upsamplers[level]):
                    # The embedding of the level this stage produces is the
                    # guide of an upsampler that reads one.
                    finer = embeds[level - stage - 1]
                    x = self.upsample_step(
                        upsampler,
                        x,
                        guide=finer,
                        size=finer.shape[2:],
                        step=f'{level}.{stage}',
                        mode=self.interpolate_mode,
                        align_corners=self.align_corners)
            outs.append(x)

        out = self.fusion_conv(torch.cat(outs, dim=1))
        return self.cls_seg(out)

    def _align(self, x: Tensor, size: Tuple[int, int]) -> Tensor:
        """Give an upsampled map ``x`` the spatial ``size`` of the next level
        (see :func:`~mmdysample.models.align.fit_to_size`)."""
        return fit_to_size(x, size, self.interpolate_mode, self.align_corners)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, '
                f'upsample_cfg={self.upsample_cfg!r}')


def _check_levels(kwargs: dict) -> None:
    """Raise readable errors where mmseg only has bare asserts."""
    if 'in_channels' not in kwargs:
        return  # the missing argument is reported by BaseDecodeHead
    in_channels = kwargs['in_channels']
    in_index = kwargs.get('in_index', -1)
    for name, value in (('in_channels', in_channels),
                        ('in_index', in_index)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f'{name} must be a list or tuple with one entry '
                            f'per input level, got {value!r}')
    if len(in_channels) != len(in_index):
        raise ValueError(
            'in_channels and in_index must have the same length, got '
            f'in_channels={list(in_channels)} ({len(in_channels)}) and '
            f'in_index={list(in_index)} ({len(in_index)})')
