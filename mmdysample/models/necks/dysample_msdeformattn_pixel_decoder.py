# Copyright (c) mmdysample contributors. All rights reserved.
"""Mask2Former's pixel decoder with a learnable upsampling step.

Paper: Liu, Lu, Fu, Cao. "Learning to Upsample by Learning to Sample",
ICCV 2023. https://arxiv.org/abs/2308.15085
"""
from typing import List, Optional, Tuple, Union

import torch
from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import ModuleList
from torch import Tensor

from ..builder import UpsampleConfig
from ..steps import UpsampleSteps, is_learnable, slots_of


@MODELS.register_module()
class DySampleMSDeformAttnPixelDecoder(UpsampleSteps,
                                       MSDeformAttnPixelDecoder):
    """Mask2Former's ``MSDeformAttnPixelDecoder`` with any upsampler.

    A drop-in for mmdet's
    :class:`~mmdet.models.layers.MSDeformAttnPixelDecoder`
    (`Mask2Former <https://arxiv.org/abs/2112.01527>`_): every argument
    keeps its meaning and default and the state-dict keys are kept, so a
    config changes only ``type`` and ``upsample_cfg``::

        pixel_decoder=dict(type='DySampleMSDeformAttnPixelDecoder',
                           upsample_cfg='DySample', ...)
        # in an mmseg config: type='mmdet.DySampleMSDeformAttnPixelDecoder'

    The decoder runs a multi-scale deformable-attention encoder on the
    coarsest ``num_encoder_levels`` levels (strides 8, 16, 32 in the zoo),
    then an FPN step per remaining level (one in the zoo: to the stride-4
    lateral): ``y = output_convs[i](lateral_convs[i](feats[i]) +
    up_i(y))``. ``upsample_cfg`` decides ``up_i``:

    - None (the default) keeps the stock decoder: its very forward
      (``F.interpolate``, bilinear, to the lateral's size), the same output
      bit for bit and the same state-dict keys.
    - a name (``'DySample'``) or a dict with ``type`` builds one upsampler
      per step with :func:`~mmdysample.models.build_upsampler`
      (``in_channels=feat_channels``, ``scale_factor`` the ratio of the two
      levels' strides, 2 in the zoo). An upsampler that reads a guide
      (FADE, SAPA-B, IndexNet, A2U, FreqFusion) gets the lateral
      ``lateral_convs[i](feats[i])``, before the sum. The result is fitted
      to the lateral's size with
      :func:`~mmdysample.models.align.fit_to_size` (crop of the rounding
      pixel, bilinear resize otherwise).

    mmdet's ``init_weights`` is overridden without ``super()`` and reaches
    only its own convolutions and the encoder; the upsamplers' own
    ``init_weights`` runs after it, under an isolated RNG
    (:class:`~mmdysample.models.steps.UpsampleSteps`). mmdet's
    ``Mask2FormerHead`` calls the decoder's ``init_weights`` itself.
    The upsamplers' parameters are ``upsample_modules.{i}.*``, step ``i``
    bringing level ``i + 1`` to level ``i``.

    Shapes: ``feats[k]`` ``(N, in_channels[k], H_k, W_k)`` -> mask features
    ``(N, out_channels, H_0, W_0)`` and ``num_outs`` multi-scale features
    ``(N, feat_channels, H_k, W_k)``, coarse first.

    Args:
        in_channels (list[int] | tuple[int]): Channels of the input levels.
            Defaults to ``[256, 512, 1024, 2048]``.
        strides (list[int] | tuple[int]): Strides of the input levels.
            Defaults to ``[4, 8, 16, 32]``.
        feat_channels (int): Channels of the features (and of the
            upsamplers). Defaults to 256.
        out_channels (int): Channels of the mask features. Defaults to 256.
        num_outs (int): Number of multi-scale output features.
            Defaults to 3.
        norm_cfg (:obj:`ConfigDict` or dict): Normalisation config.
            Defaults to ``dict(type='GN', num_groups=32)``.
        act_cfg (:obj:`ConfigDict` or dict): Activation config.
            Defaults to ``dict(type='ReLU')``.
        encoder (:obj:`ConfigDict` or dict): The deformable encoder's config
            (a ``ConfigDict``: mmdet reads it by attribute). Defaults to
            None.
        positional_encoding (:obj:`ConfigDict` or dict): Sine positional
            encoding config. Defaults to
            ``dict(num_feats=128, normalize=True)``.
        init_cfg (:obj:`ConfigDict` or dict or list, optional): Unused by
            mmdet's ``init_weights`` (as in the stock decoder), except a
            ``Pretrained`` one with learnable steps. Defaults to None.
        upsample_cfg (str | dict, optional): The upsampler of each step, see
            above. Defaults to None.

    Raises:
        TypeError: ``upsample_cfg`` is neither None, a str nor a dict.
        KeyError: ``upsample_cfg`` names no registered upsampler.
        ValueError: A step's strides are not an integer ratio apart.

    Example:
        >>> import torch
        >>> from mmengine.config import ConfigDict
        >>> encoder = ConfigDict(num_layers=1, layer_cfg=dict(
        ...     self_attn_cfg=dict(embed_dims=32, num_levels=3,
        ...                        batch_first=True),
        ...     ffn_cfg=dict(embed_dims=32, feedforward_channels=64)))
        >>> decoder = DySampleMSDeformAttnPixelDecoder(
        ...     in_channels=[8, 16, 24, 32], feat_channels=32,
        ...     out_channels=32, encoder=encoder,
        ...     positional_encoding=dict(num_feats=16, normalize=True),
        ...     upsample_cfg='DySample')
        >>> len(decoder.upsample_modules)
        1
        >>> feats = [torch.rand(1, c, 33 // 2**i + 1, 43 // 2**i + 1)
        ...          for i, c in enumerate([8, 16, 24, 32])]
        >>> mask_feature, outs = decoder(feats)
        >>> tuple(mask_feature.shape), [tuple(o.shape[2:]) for o in outs]
        ((1, 32, 34, 44), [(5, 6), (9, 11), (17, 22)])
    """

    def __init__(self,
                 in_channels: Union[List[int],
                                    Tuple[int]] = [256, 512, 1024, 2048],
                 strides: Union[List[int], Tuple[int]] = [4, 8, 16, 32],
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 encoder: ConfigType = None,
                 positional_encoding: ConfigType = dict(
                     num_feats=128, normalize=True),
                 init_cfg: OptMultiConfig = None,
                 upsample_cfg: Optional[UpsampleConfig] = None) -> None:
        super().__init__(
            in_channels=in_channels,
            strides=strides,
            feat_channels=feat_channels,
            out_channels=out_channels,
            num_outs=num_outs,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            encoder=encoder,
            positional_encoding=positional_encoding,
            init_cfg=init_cfg)
        self.upsample_cfg = (
            upsample_cfg.copy()
            if isinstance(upsample_cfg, dict) else upsample_cfg)
        self.upsample_modules: Optional[ModuleList] = None
        if is_learnable(upsample_cfg):
            num_steps = self.num_input_levels - self.num_encoder_levels
            self.upsample_modules = self.build_steps(
                upsample_cfg, feat_channels,
                [self._step_scale(i) for i in range(num_steps)])

    def _step_scale(self, step: int) -> int:
        """The ratio of step ``step``: level ``step + 1``'s stride over
        level ``step``'s."""
        fine, coarse = self.strides[step], self.strides[step + 1]
        if coarse % fine or coarse <= fine:
            raise ValueError(
                f'{type(self).__name__}: step {step} upsamples stride '
                f'{coarse} to stride {fine}, not an integer ratio > 1; '
                f'strides={list(self.strides)}')
        return coarse // fine

    def upsample_slots(self) -> list:
        """``upsample_modules[i]``: the step from level ``i + 1`` to ``i``.
        """
        return slots_of(self.upsample_modules)

    def forward(self, feats: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Encode the coarse levels, then decode the fine ones.

        Args:
            feats (list[Tensor]): ``(N, in_channels[k], H_k, W_k)``, fine
                to coarse.

        Returns:
            tuple: The mask features ``(N, out_channels, H_0, W_0)`` and
            the first ``num_outs`` multi-scale features (coarse first).

        Raises:
            ValueError: A guide does not fit its step (naming the host and
                the step).
        """
        if self.upsample_modules is None:
            return super().forward(feats)
        outs = self._encode(feats)
        for i in range(self.num_input_levels - self.num_encoder_levels - 1,
                       -1, -1):
            cur_feat = self.lateral_convs[i](feats[i])
            # A guided upsampler reads the lateral before the sum.
            y = cur_feat + self.upsample_step(
                self.upsample_modules[i],
                outs[-1],
                guide=cur_feat,
                size=cur_feat.shape[-2:],
                step=i)
            outs.append(self.output_convs[i](y))
        return self.mask_feature(outs[-1]), outs[:self.num_outs]

    def _encode(self, feats: List[Tensor]) -> List[Tensor]:
        """The deformable encoder on the coarsest ``num_encoder_levels``
        levels: ``(N, feat_channels, H_k, W_k)`` each, coarse first.

        As the first part of mmdet's ``forward`` (v3.3.0), which cannot be
        reused because it ends in the stock ``F.interpolate`` steps.
        """
        batch_size = feats[0].shape[0]
        encoder_input_list = []
        padding_mask_list = []
        level_positional_encoding_list = []
        spatial_shapes = []
        reference_points_list = []
        for i in range(self.num_encoder_levels):
            level_idx = self.num_input_levels - i - 1
            feat = feats[level_idx]
            feat_projected = self.input_convs[i](feat)
            feat_hw = torch._shape_as_tensor(feat)[2:].to(feat.device)
            padding_mask_resized = feat.new_zeros(
                (batch_size, ) + feat.shape[-2:], dtype=torch.bool)
            pos_embed = self.postional_encoding(padding_mask_resized)
            level_embed = self.level_encoding.weight[i]
            level_pos_embed = level_embed.view(1, -1, 1, 1) + pos_embed
            reference_points = self.point_generator.single_level_grid_priors(
                feat.shape[-2:], level_idx, device=feat.device)
            feat_wh = feat_hw.unsqueeze(0).flip(dims=[0, 1])
            factor = feat_wh * self.strides[level_idx]
            reference_points = reference_points / factor
            encoder_input_list.append(feat_projected.flatten(2).permute(
                0, 2, 1))
            padding_mask_list.append(padding_mask_resized.flatten(1))
            level_positional_encoding_list.append(
                level_pos_embed.flatten(2).permute(0, 2, 1))
            spatial_shapes.append(feat_hw)
            reference_points_list.append(reference_points)
        padding_masks = torch.cat(padding_mask_list, dim=1)
        encoder_inputs = torch.cat(encoder_input_list, dim=1)
        level_positional_encodings = torch.cat(
            level_positional_encoding_list, dim=1)
        num_queries_per_level = [e[0] * e[1] for e in spatial_shapes]
        spatial_shapes = torch.cat(spatial_shapes).view(-1, 2)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        reference_points = torch.cat(reference_points_list, dim=0)
        reference_points = reference_points[None, :, None].repeat(
            batch_size, 1, self.num_encoder_levels, 1)
        valid_ratios = reference_points.new_ones(
            (batch_size, self.num_encoder_levels, 2))
        memory = self.encoder(
            query=encoder_inputs,
            query_pos=level_positional_encodings,
            key_padding_mask=padding_masks,
            spatial_shapes=spatial_shapes,
            reference_points=reference_points,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)
        # (N, C, all queries), split per level, coarse first
        memory = memory.permute(0, 2, 1)
        outs = torch.split(memory, num_queries_per_level, dim=-1)
        return [
            x.reshape(batch_size, -1, spatial_shapes[i][0],
                      spatial_shapes[i][1]) for i, x in enumerate(outs)
        ]

    def extra_repr(self) -> str:
        return f'upsample_cfg={self.upsample_cfg!r}'
