# Copyright (c) mmdysample contributors. All rights reserved.
"""mmdet's MaskFormer pixel decoders with learnable top-down upsampling.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023, Sec. 4.1 and Table 5. https://arxiv.org/abs/2308.15085
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.layers import PixelDecoder, TransformerEncoderPixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import ModuleList
from mmengine.registry import MODELS as ROOT_MODELS
from torch import Tensor

from ..builder import UpsampleConfig
from ..steps import UpsampleSteps, is_learnable, slots_of


class _LearnableTopDown(UpsampleSteps):
    """The top-down path shared by the two pixel decoders below.

    Stage ``i`` computes ``y = output_convs[i](lateral_convs[i](feats[i]) +
    up_i(y))``, coarse to fine, where ``up_i`` is
    ``upsample_modules[i]`` (a x2 upsampler at ``feat_channels``). An
    upsampler that reads a guide gets ``lateral_convs[i](feats[i])``, the
    lateral before the sum, as in an FPN. With ``upsample_cfg=None`` the
    decoders' forwards run mmdet's own, so this path always has upsamplers.
    mmdet's ``init_weights`` (``caffe2_xavier_init`` on its own
    convolutions) runs first, then each upsampler's own
    (:class:`~mmdysample.models.steps.UpsampleSteps`).
    """

    def _build_upsamplers(self, upsample_cfg: Optional[UpsampleConfig],
                          feat_channels: int) -> None:
        self.upsample_modules: Optional[ModuleList] = None
        if is_learnable(upsample_cfg):
            self.upsample_modules = self.build_steps(
                upsample_cfg, feat_channels, [2] * (self.num_inputs - 1))
        self.upsample_cfg = (
            upsample_cfg.copy()
            if isinstance(upsample_cfg, dict) else upsample_cfg)

    def upsample_slots(self) -> list:
        """``upsample_modules[i]``: the step from level ``i + 1`` to ``i``.
        """
        return slots_of(self.upsample_modules)

    def _check_inputs(self, feats: List[Tensor]) -> None:
        if len(feats) != self.num_inputs:
            raise ValueError(
                f'{type(self).__name__} expects {self.num_inputs} input '
                f'levels (in_channels={list(self.in_channels)}), got '
                f'{len(feats)}')

    def _top_down(self, y: Tensor, feats: List[Tensor]) -> Tensor:
        for i in range(self.num_inputs - 2, -1, -1):
            cur_feat = self.lateral_convs[i](feats[i])
            # A guided upsampler reads the lateral before the sum.
            y = self.output_convs[i](cur_feat + self.upsample_step(
                self.upsample_modules[i],
                y,
                guide=cur_feat,
                size=cur_feat.shape[-2:],
                step=i))
        return self.mask_feature(y)


@MODELS.register_module()
class DySamplePixelDecoder(_LearnableTopDown, PixelDecoder):
    """MaskFormer's FPN pixel decoder with any registered x2 upsampler.

    A drop-in for mmdet's :class:`~mmdet.models.layers.PixelDecoder` (the
    FPN-like pixel decoder of MaskFormer, used by mmseg's ``MaskFormerHead``):
    every argument keeps its meaning and default, and the state-dict keys of
    the lateral / output / mask-feature convolutions are kept. The stock
    decoder brings the coarser map up with nearest ``F.interpolate`` in each
    of its ``len(in_channels) - 1`` top-down stages (three on a 4-level
    backbone); DySample (Table 5) replaces those.

    ``upsample_cfg`` decides the top-down upsampling:

    - ``None`` (the default) keeps the stock decoder: its very forward,
      the same output bit for bit and the same state-dict keys.
    - a name (``'DySample-S+'``) or a dict with ``type``
      (``dict(type='carafe')``) builds one upsampler per stage with
      :func:`~mmdysample.models.build_upsampler` (``in_channels=
      feat_channels``, ``scale_factor=2``): the DySample family, mmcv's
      ``'nearest'``, ``'bilinear'``, ``'deconv'``, ``'pixel_shuffle'``,
      ``'carafe'``, or any other registered upsampler. When the upsampled
      map is not the lateral's size (inputs not divisible by the total
      stride) it is fitted with :func:`~mmdysample.models.align.fit_to_size`.

    Registered in mmdet's ``MODELS`` (as ``PixelDecoder``) and in the
    mmengine root ``MODELS``, so that an mmseg config names it without a
    scope: ``pixel_decoder=dict(type='DySamplePixelDecoder', ...)``
    (``'mmdet.DySamplePixelDecoder'`` works too).

    Note:
        mmdet's ``MaskFormerHead`` adds its ``decoder_input_proj`` (1x1 conv
        from ``in_channels[-1]`` to the transformer's width) only when the
        pixel decoder's type is exactly ``PixelDecoder``. Use it with
        :class:`~mmdysample.models.decode_heads.DySampleMaskFormerHead`
        (mmseg), which adds the projection for this decoder too.

    The upsamplers keep their own initialisation: :meth:`init_weights` runs
    mmdet's (``caffe2_xavier_init`` on its convolutions), then each
    upsampler's ``init_weights``; neither building nor initialising them
    draws from the global RNG.

    Args:
        in_channels (list[int] | tuple[int]): Channels of the input levels,
            fine to coarse.
        feat_channels (int): Channels of the top-down path (and of the
            upsamplers).
        out_channels (int): Channels of the mask features.
        norm_cfg (:obj:`ConfigDict` or dict): Normalisation config.
            Defaults to ``dict(type='GN', num_groups=32)``.
        act_cfg (:obj:`ConfigDict` or dict): Activation config.
            Defaults to ``dict(type='ReLU')``.
        upsample_cfg (str | dict, optional): The top-down x2 upsampler, see
            above. Defaults to None.
        init_cfg (:obj:`ConfigDict` or dict or list, optional):
            Initialisation config (unused by mmdet's ``init_weights``).
            Defaults to None.

    Attributes:
        upsample_modules (ModuleList | None): One upsampler per top-down
            stage; index ``i`` upsamples the level-``i + 1`` path to level
            ``i``. None with ``upsample_cfg=None``.

    Shapes:
        ``feats[k]``: ``(N, in_channels[k], H_k, W_k)`` with
        ``H_{k+1} = ceil(H_k / 2)``. Returns the mask features
        ``(N, out_channels, H_0, W_0)`` and the memory ``feats[-1]``.

    Example:
        >>> import torch
        >>> decoder = DySamplePixelDecoder(
        ...     [8, 16, 32, 64], feat_channels=32, out_channels=16,
        ...     norm_cfg=dict(type='GN', num_groups=8),
        ...     upsample_cfg='DySample-S+')
        >>> len(decoder.upsample_modules)
        3
        >>> feats = [torch.rand(2, c, h, w) for c, (h, w) in zip(
        ...     [8, 16, 32, 64], [(37, 45), (19, 23), (10, 12), (5, 6)])]
        >>> mask_feature, memory = decoder(feats, batch_img_metas=[])
        >>> tuple(mask_feature.shape), tuple(memory.shape)
        ((2, 16, 37, 45), (2, 64, 5, 6))
    """

    def __init__(self,
                 in_channels: Union[List[int], Tuple[int]],
                 feat_channels: int,
                 out_channels: int,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels=in_channels,
            feat_channels=feat_channels,
            out_channels=out_channels,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        self._build_upsamplers(upsample_cfg, feat_channels)

    def forward(self, feats: List[Tensor],
                batch_img_metas: List[dict]) -> Tuple[Tensor, Tensor]:
        """Decode the levels into mask features.

        Args:
            feats (list[Tensor]): Backbone levels, fine to coarse,
                ``feats[k]`` of shape ``(N, in_channels[k], H_k, W_k)``.
            batch_img_metas (list[dict]): Image metas (not used, as in
                mmdet).

        Returns:
            tuple[Tensor, Tensor]: The mask features
            ``(N, out_channels, H_0, W_0)`` and the memory ``feats[-1]``.
        """
        if self.upsample_modules is None:
            return super().forward(feats, batch_img_metas)
        self._check_inputs(feats)
        y = self.last_feat_conv(feats[-1])
        return self._top_down(y, feats), feats[-1]


@MODELS.register_module()
class DySampleTransformerEncoderPixelDecoder(_LearnableTopDown,
                                             TransformerEncoderPixelDecoder):
    """mmdet's ``TransformerEncoderPixelDecoder`` with learnable upsampling.

    The pixel decoder of mmdet's MaskFormer (panoptic): a DETR transformer
    encoder on the coarsest level, then the same top-down FPN as
    :class:`DySamplePixelDecoder`, whose ``upsample_cfg`` it takes with the
    same meaning (``None``: the stock decoder, same output and keys). Its
    memory is the encoder's output at ``feat_channels``, so mmdet's
    ``MaskFormerHead`` needs no input projection for it.

    Args:
        in_channels (list[int] | tuple[int]): Channels of the input levels.
        feat_channels (int): Channels of the top-down path (and of the
            encoder and the upsamplers).
        out_channels (int): Channels of the mask features.
        norm_cfg (:obj:`ConfigDict` or dict): Normalisation config.
            Defaults to ``dict(type='GN', num_groups=32)``.
        act_cfg (:obj:`ConfigDict` or dict): Activation config.
            Defaults to ``dict(type='ReLU')``.
        encoder (:obj:`ConfigDict` or dict): ``DetrTransformerEncoder``
            config. Defaults to None.
        positional_encoding (:obj:`ConfigDict` or dict): Sine positional
            encoding config. Defaults to
            ``dict(num_feats=128, normalize=True)``.
        upsample_cfg (str | dict, optional): The top-down x2 upsampler.
            Defaults to None.
        init_cfg (:obj:`ConfigDict` or dict or list, optional):
            Initialisation config. Defaults to None.

    Shapes:
        ``feats[k]``: ``(N, in_channels[k], H_k, W_k)``. Returns the mask
        features ``(N, out_channels, H_0, W_0)`` and the memory
        ``(N, feat_channels, H_last, W_last)``.
    """

    def __init__(self,
                 in_channels: Union[List[int], Tuple[int]],
                 feat_channels: int,
                 out_channels: int,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 encoder: ConfigType = None,
                 positional_encoding: ConfigType = dict(
                     num_feats=128, normalize=True),
                 upsample_cfg: Optional[UpsampleConfig] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels=in_channels,
            feat_channels=feat_channels,
            out_channels=out_channels,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            encoder=encoder,
            positional_encoding=positional_encoding,
            init_cfg=init_cfg)
        self._build_upsamplers(upsample_cfg, feat_channels)

    def forward(self, feats: List[Tensor],
                batch_img_metas: List[dict]) -> Tuple[Tensor, Tensor]:
        """Encode the coarsest level, then decode into mask features.

        Args:
            feats (list[Tensor]): Backbone levels, fine to coarse.
            batch_img_metas (list[dict]): Image metas with
                ``batch_input_shape`` and ``img_shape`` (for the padding
                mask of the encoder).

        Returns:
            tuple[Tensor, Tensor]: The mask features
            ``(N, out_channels, H_0, W_0)`` and the encoder memory
            ``(N, feat_channels, H_last, W_last)``.
        """
        if self.upsample_modules is None:
            return super().forward(feats, batch_img_metas)
        self._check_inputs(feats)
        memory = self._encode(feats[-1], batch_img_metas)
        y = self.encoder_out_proj(memory)
        return self._top_down(y, feats), memory

    def _encode(self, feat_last: Tensor,
                batch_img_metas: List[dict]) -> Tensor:
        """The transformer encoder on the coarsest level, as mmdet runs it:
        padded pixels of each image are masked out."""
        bs, _, h, w = feat_last.shape
        input_h, input_w = batch_img_metas[0]['batch_input_shape']
        padding_mask = feat_last.new_ones((bs, input_h, input_w),
                                          dtype=torch.float32)
        for i, meta in enumerate(batch_img_metas):
            img_h, img_w = meta['img_shape']
            padding_mask[i, :img_h, :img_w] = 0
        padding_mask = F.interpolate(
            padding_mask.unsqueeze(1), size=(h, w),
            mode='nearest').to(torch.bool).squeeze(1)
        pos_embed = self.positional_encoding(padding_mask)
        query = self.encoder_in_proj(feat_last).flatten(2).permute(0, 2, 1)
        memory = self.encoder(
            query=query,
            query_pos=pos_embed.flatten(2).permute(0, 2, 1),
            key_padding_mask=padding_mask.flatten(1))
        return memory.permute(0, 2, 1).reshape(bs, self.encoder_embed_dims,
                                               h, w)


# Also in the root registry: any scope (mmseg's MaskFormerHead builds its
# pixel decoder in the config's default scope) finds them without a prefix.
ROOT_MODELS.register_module(module=DySamplePixelDecoder)
ROOT_MODELS.register_module(module=DySampleTransformerEncoderPixelDecoder)
