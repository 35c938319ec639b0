# Copyright (c) mmdysample contributors. All rights reserved.
"""DepthFormer's DenseDepth decoder, with learnable upsampling stages."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from ..builder import UpsampleConfig
from ..depth.sig_loss import SigLoss  # noqa: F401 (the default loss)
from ..steps import UpsampleSteps, is_learnable, slots_of


class DepthFusion(nn.Module):
    """One decoder stage after its upsampling: concatenate the upsampled map
    with the skip, then two 3x3 ``ConvModule``\\ s (``convA``, ``convB``:
    the toolbox's keys).

    Shapes: ``up`` ``(N, C_up, H, W)`` and ``skip`` ``(N, C_skip, H, W)`` ->
    ``(N, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 **conv_kwargs) -> None:
        super().__init__()
        self.convA = ConvModule(
            in_channels, out_channels, 3, padding=1, **conv_kwargs)
        self.convB = ConvModule(
            out_channels, out_channels, 3, padding=1, **conv_kwargs)

    def forward(self, up: Tensor, skip: Tensor) -> Tensor:
        return self.convB(self.convA(torch.cat([up, skip], dim=1)))


@MODELS.register_module()
class DenseDepthHead(UpsampleSteps, BaseDecodeHead):
    """DepthFormer's DenseDepth decoder; its x2 stages can be learnable.

    The decoder of `DepthFormer <https://arxiv.org/abs/2203.14211>`_ (after
    `DenseDepth <https://arxiv.org/abs/1812.11941>`_), as the
    Monocular-Depth-Estimation-Toolbox builds it: a 1x1 convolution
    (``conv_list.0``, no norm, no activation) on the coarsest level, then
    one **stage** per finer level, coarse to fine: upsample the decoder map
    to the level's size, concatenate the level (the *skip*), two 3x3
    ``ConvModule``\\ s (``conv_list.{k + 1}``). A 3x3 convolution
    (``conv_depth``) to one channel gives the depth, ``relu(x) +
    min_depth`` (or ``sigmoid(x) * max_depth`` with ``scale_up``), at the
    finest level's size. With DepthFormer's Swin-T levels (64@1/2, 96@1/4,
    192@1/8, 384@1/16, 768@1/32) the four stages upsample maps of 768, 384,
    192 and 96 channels, each x2, and the depth comes out at 1/2.

    ``upsample_cfg`` decides the stages' upsampling:

    - None (the default): the toolbox's ``F.interpolate(mode='bilinear',
      align_corners=align_corners)`` to the skip's size.
    - a name (``'DySample'``) or a dict with ``type``: one upsampler per
      stage from :func:`~mmdysample.models.build_upsampler`, at the width
      of the map it upsamples (``up_sample_channels`` of the coarser
      level), ``scale_factor=2``; its output is fitted to the skip's size
      with :func:`~mmdysample.models.align.fit_to_size` (the surplus row of
      an odd size cropped, any other mismatch resized bilinearly with the
      head's ``align_corners``). An upsampler that reads a guide (FADE,
      SAPA-B, IndexNet, A2U, FreqFusion; see :mod:`~mmdysample.models.guide`)
      is guided by the skip itself, ``in_channels`` of the finer level
      wide. One that cannot read a guide of that width at some stage
      (FreqFusion adds its guide to its output, as FADE with
      ``gating=True``; GroupNorms that do not divide it) reads, at
      every stage, the skip brought to the upsampled map's width by a 1x1
      ``ConvModule`` with the head's conv / norm / act configs
      (``upsample_guides.{k}``), built for it only and counted with it.

    The upsamplers are ``upsample_modules.{k}``, stage ``k`` bringing the
    map of level ``L - 1 - k`` to level ``L - 2 - k`` (stage 0 starts at
    the coarsest). They keep their own initialisation, and building or
    initialising them draws nothing from the global RNG
    (:class:`~mmdysample.models.steps.UpsampleSteps`), so two heads that
    differ only in ``upsample_cfg`` start with the same convolutions.

    mmseg's depth-head contract (as its ``VPDDepthHead``): ``num_classes =
    out_channels = 1``; the loss reads ``gt_depth_map`` from the data
    samples and compares it with the depth resized (bilinear, the head's
    ``align_corners``) to its size; prediction returns the depth resized to
    the padded input size, which mmseg's ``DepthEstimator`` crops and
    resizes to each image's ``ori_shape``. mmseg's ``BaseDecodeHead``
    ``__init__`` is not run (it would build the unused 1x1 ``conv_seg`` and
    a dropout, and warn about a binary threshold).

    Parameters at Swin-T: 7,688,961 (the whole bilinear DepthFormer with
    :class:`~mmdysample.models.depth.DepthFormerSwin` and
    :class:`~mmdysample.models.depth.HAHIHeteroNeck`: 47,612,029, the
    paper's 47.6M); DySample adds 46,208 (46,080 offset weights, the
    paper's 46.1K, and 4 x 32 offset biases).

    Shapes: levels ``(N, in_channels[i], H_i, W_i)``, fine to coarse ->
    depth ``(N, 1, H_0, W_0)``, positive.

    Args:
        in_channels (Sequence[int]): Channels of the levels, fine to coarse
            (DepthFormer Swin-T: 64, 96, 192, 384, 768).
        up_sample_channels (Sequence[int]): Decoder width at each level,
            fine to coarse: the 1x1 convolution's output at the coarsest,
            each stage's output at the others.
        channels (int): Input width of ``conv_depth``: the finest decoder
            width, ``up_sample_channels[0]``. Defaults to 64.
        min_depth (float): Added to the ReLU'd output, so every depth is at
            least this (mmseg's ``DepthMetric`` takes logs). Defaults to
            1e-3.
        max_depth (float, optional): The dataset's depth range (NYU: 10);
            the scale of ``scale_up``. Defaults to 10.
        scale_up (bool): Depth as ``sigmoid(x) * max_depth`` instead of
            ``relu(x) + min_depth``. Defaults to False.
        upsample_cfg (str | dict, optional): The x2 upsampler of every
            stage, see above. Defaults to None.
        in_index (Sequence[int]): Which backbone / neck outputs are the
            levels. Defaults to None: all of them, ``range(len(in_channels))``.
        align_corners (bool): Of the stock upsampling, the loss's and the
            prediction's resizes, and :func:`fit_to_size`'s fallback.
            Defaults to True (the toolbox's).
        conv_cfg (dict, optional): Config of the convolutions. Defaults to
            None.
        norm_cfg (dict, optional): Norm of the stage convolutions.
            Defaults to None (the toolbox's DepthFormer: none).
        act_cfg (dict): Their activation. Defaults to
            ``dict(type='LeakyReLU', inplace=True)`` (DepthFormer's config).
        loss_decode (dict | Sequence[dict]): The loss(es), built from
            mmseg's registry. Defaults to :class:`SigLoss` with
            ``valid_mask=True``, weight 1.
        init_cfg (dict, optional): mmengine init config. Defaults to None.

    Raises:
        ValueError: ``in_channels`` and ``up_sample_channels`` differ in
            length or list fewer than two levels, ``channels`` is not
            ``up_sample_channels[0]``, ``min_depth`` is not positive,
            ``scale_up`` without ``max_depth``; at forward, a guide that
            does not fit (the message names the head and the stage).
        TypeError: ``upsample_cfg`` is neither None, a str nor a dict, or
            ``loss_decode`` neither a dict nor a sequence.
        KeyError: ``upsample_cfg`` names no registered upsampler.

    Example:
        >>> channels = [8, 16, 32, 64, 128]
        >>> head = DenseDepthHead(
        ...     in_channels=channels, up_sample_channels=channels,
        ...     channels=8, upsample_cfg='DySample')
        >>> [m.in_channels for m in head.upsample_modules]
        [128, 64, 32, 16]
        >>> feats = [torch.rand(1, c, 23 // 2**i + 1, 31 // 2**i + 1)
        ...          for i, c in enumerate(channels)]
        >>> depth = head(feats)
        >>> depth.shape, bool((depth >= head.min_depth).all())
        (torch.Size([1, 1, 24, 32]), True)
    """

    def __init__(self,
                 in_channels: Sequence[int] = (64, 96, 192, 384, 768),
                 up_sample_channels: Sequence[int] = (64, 96, 192, 384,
                                                      768),
                 channels: int = 64,
                 min_depth: float = 1e-3,
                 max_depth: Optional[float] = 10,
                 scale_up: bool = False,
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 in_index: Optional[Sequence[int]] = None,
                 align_corners: bool = True,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='LeakyReLU', inplace=True),
                 loss_decode: Union[dict, Sequence[dict]] = dict(
                     type='SigLoss', valid_mask=True, loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        in_channels, ups = list(in_channels), list(up_sample_channels)
        if len(in_channels) != len(ups) or len(in_channels) < 2:
            raise ValueError(
                'in_channels and up_sample_channels must list the same '
                f'levels, at least two; got in_channels={in_channels}, '
                f'up_sample_channels={ups}')
        if channels != ups[0]:
            raise ValueError(
                f'channels ({channels}) must be up_sample_channels[0] '
                f'({ups[0]}): conv_depth reads the last stage\'s output')
        if not min_depth > 0:
            raise ValueError(f'min_depth must be positive (predicted depths '
                             f'are at least min_depth), got {min_depth!r}')
        if scale_up and max_depth is None:
            raise ValueError('scale_up=True predicts sigmoid * max_depth: '
                             'max_depth must be set, got None')
        learnable = is_learnable(upsample_cfg)
        # BaseModule's __init__, not BaseDecodeHead's (see the docstring).
        super(BaseDecodeHead, self).__init__(init_cfg=init_cfg)
        if in_index is None:
            in_index = list(range(len(in_channels)))
        self._init_inputs(in_channels, list(in_index), 'multiple_select')
        self.up_sample_channels = ups
        self.channels = channels
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.scale_up = scale_up
        self.align_corners = align_corners
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.num_classes = 1
        self.out_channels = 1
        self.threshold = None
        self.sampler = None
        if isinstance(loss_decode, dict):
            self.loss_decode = MODELS.build(loss_decode)
        elif isinstance(loss_decode, (list, tuple)):
            self.loss_decode = nn.ModuleList(
                MODELS.build(cfg) for cfg in loss_decode)
        else:
            raise TypeError('loss_decode must be a dict or a sequence of '
                            f'dicts, got {type(loss_decode).__name__}')

        conv_kwargs = dict(
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        # coarse to fine, as the toolbox's conv_list
        coarse_in, coarse_up = in_channels[::-1], ups[::-1]
        self.conv_list = nn.ModuleList([
            ConvModule(coarse_in[0], coarse_up[0], 1, conv_cfg=conv_cfg,
                       act_cfg=None)
        ])
        for k in range(1, len(coarse_in)):
            self.conv_list.append(
                DepthFusion(coarse_up[k - 1] + coarse_in[k], coarse_up[k],
                            **conv_kwargs))
        self.conv_depth = nn.Conv2d(channels, 1, 3, padding=1)

        self.upsample_cfg = upsample_cfg
        self.upsample_modules = None
        self.upsample_guides = None
        if learnable:
            self._build_upsamplers(upsample_cfg, coarse_up[:-1],
                                   coarse_in[1:], conv_kwargs)

    def _build_upsamplers(self, upsample_cfg: UpsampleConfig,
                          widths: List[int], skips: List[int],
                          conv_kwargs: dict) -> None:
        """One upsampler per stage; guide projections where the skips'
        widths do not do (see the class docstring)."""
        self.upsample_modules, self.upsample_guides = self.build_guided_steps(
            upsample_cfg, widths, [2] * len(widths), skips, **conv_kwargs)

    def upsample_slots(self) -> list:
        """``upsample_modules[k]`` (stage ``k``, coarse to fine) and, where
        there are some, ``upsample_guides[k]``."""
        return slots_of(self.upsample_modules) + slots_of(self.upsample_guides)

    def upsample(self, stage: int, x: Tensor, skip: Tensor) -> Tensor:
        """Stage ``stage``'s upsampling of ``x`` to ``skip``'s size."""
        if self.upsample_modules is None:
            return F.interpolate(
                x,
                size=skip.shape[2:],
                mode='bilinear',
                align_corners=self.align_corners)
        guide = skip
        if self.upsample_guides is not None:
            guide = self.upsample_guides[stage](skip)
        return self.upsample_step(
            self.upsample_modules[stage],
            x,
            guide=guide,
            size=skip.shape[2:],
            step=stage,
            align_corners=self.align_corners)

    def depth_pred(self, feat: Tensor) -> Tensor:
        """``(N, channels, H, W)`` -> depth ``(N, 1, H, W)``, positive."""
        logit = self.conv_depth(feat)
        if self.scale_up:
            return torch.sigmoid(logit) * self.max_depth
        return F.relu(logit) + self.min_depth

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Depth ``(N, 1, H_0, W_0)`` at the finest selected level's size.
        """
        levels = self._transform_inputs(inputs)[::-1]
        x = self.conv_list[0](levels[0])
        for stage, skip in enumerate(levels[1:]):
            up = self.upsample(stage, x, skip)
            x = self.conv_list[stage + 1](up, skip)
        return self.depth_pred(x)

    def _stack_batch_gt(self, batch_data_samples: SampleList) -> Tensor:
        """The ground-truth depths ``(N, 1, H, W)`` (``gt_depth_map``)."""
        return torch.stack(
            [sample.gt_depth_map.data for sample in batch_data_samples])

    def loss_by_feat(self, pred_depth_map: Tensor,
                     batch_data_samples: SampleList) -> dict:
        """The losses of a batch, keyed by each loss's ``loss_name``.

        Args:
            pred_depth_map (Tensor): :meth:`forward`'s depth
                ``(N, 1, H_0, W_0)``.
            batch_data_samples (list[SegDataSample]): With
                ``gt_depth_map`` ``(1, H, W)``.

        Returns:
            dict[str, Tensor]: ``{'loss_depth': ...}`` for :class:`SigLoss`.
        """
        gt = self._stack_batch_gt(batch_data_samples)
        pred = F.interpolate(
            pred_depth_map,
            size=gt.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        losses_decode = (
            self.loss_decode if isinstance(self.loss_decode, nn.ModuleList)
            else [self.loss_decode])
        loss = dict()
        for loss_decode in losses_decode:
            value = loss_decode(pred, gt)
            name = loss_decode.loss_name
            loss[name] = loss[name] + value if name in loss else value
        return loss

    def predict_by_feat(self, pred_depth_map: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """The depth resized (bilinear) to the padded input size.

        As mmseg's ``BaseDecodeHead``: ``img_shape`` in slide inference (a
        ``torch.Size``), else ``pad_shape``, else ``img_shape``; a bilinear
        resize of positive depths stays positive.
        """
        meta = batch_img_metas[0]
        if isinstance(meta['img_shape'], torch.Size):
            size = meta['img_shape']
        elif 'pad_shape' in meta:
            size = meta['pad_shape'][:2]
        else:
            size = meta['img_shape']
        return F.interpolate(
            pred_depth_map,
            size=tuple(size),
            mode='bilinear',
            align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, up_sample_channels='
                f'{self.up_sample_channels}, min_depth={self.min_depth}, '
                f'max_depth={self.max_depth}, scale_up={self.scale_up}, '
                f'align_corners={self.align_corners}, '
                f'upsample_cfg={self.upsample_cfg!r}')
