# Copyright (c) mmdysample contributors. All rights reserved.
"""mmseg's MaskFormer head, made to accept a subclass of ``PixelDecoder``."""
import torch.nn as nn
from mmcv.cnn import Conv2d
from mmdet.models.layers import PixelDecoder, TransformerEncoderPixelDecoder
from mmseg.models.decode_heads import MaskFormerHead
from mmseg.registry import MODELS


@MODELS.register_module()
class DySampleMaskFormerHead(MaskFormerHead):
    """mmseg's ``MaskFormerHead`` for a pixel decoder with ``upsample_cfg``.

    MaskFormer (`Cheng et al., NeurIPS 2021
    <https://arxiv.org/abs/2107.06278>`_) feeds the coarsest backbone level
    to its transformer decoder through a 1x1 convolution,
    ``decoder_input_proj`` (``in_channels[-1]`` -> the decoder's width).
    mmdet builds it only when ``type(pixel_decoder) == PixelDecoder``, so a
    subclass such as
    :class:`~mmdysample.models.necks.DySamplePixelDecoder` would get an
    identity instead and the transformer would receive e.g. 1024 channels
    (Swin-B) where it expects 256. This head builds the projection for every
    ``PixelDecoder`` subclass whose memory is the raw backbone level (not
    for ``TransformerEncoderPixelDecoder``, whose memory already has the
    decoder's width), under the same condition and with the same key
    (``decoder_input_proj``) as for ``PixelDecoder``; nothing else changes.
    With ``DySamplePixelDecoder`` and its default ``upsample_cfg=None`` the
    model has the state-dict keys and the output of mmseg's stock
    MaskFormer.

    Args:
        **kwargs: The arguments of mmseg's ``MaskFormerHead`` (and mmdet's):
            ``in_channels``, ``feat_channels``, ``out_channels``,
            ``num_classes``, ``pixel_decoder``, ``transformer_decoder``,
            ``enforce_decoder_input_project``, the losses, ...

    Shapes: the levels ``(N, in_channels[i], H_i, W_i)`` -> per-query class
    scores and mask logits, as mmseg's head.

    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        decoder = self.pixel_decoder
        in_channels = kwargs['in_channels']
        if (type(decoder) is not PixelDecoder  # else mmdet has decided
                and isinstance(decoder, PixelDecoder)
                and not isinstance(decoder, TransformerEncoderPixelDecoder)
                and isinstance(self.decoder_input_proj, nn.Identity)
                and (self.decoder_embed_dims != in_channels[-1]
                     or kwargs.get('enforce_decoder_input_project', False))):
            # mmcv's Conv2d, as mmdet's: its init_weights looks for it.
            self.decoder_input_proj = Conv2d(
                in_channels[-1], self.decoder_embed_dims, kernel_size=1)
