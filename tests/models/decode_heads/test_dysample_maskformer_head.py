# Copyright (c) mmdysample contributors. All rights reserved.
"""DySampleMaskFormerHead: mmseg's MaskFormer head with our pixel decoder,
built from an mmseg config, equal to the stock head by default."""
import copy

import pytest
import torch

pytest.importorskip('mmseg')
pytest.importorskip('mmdet')

from mmcv.cnn import Conv2d  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.models.decode_heads import MaskFormerHead  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import mmdysample.models  # noqa: E402,F401 (registers decoder and head)
from mmdysample.models.decode_heads import DySampleMaskFormerHead  # noqa
from mmdysample.models.necks import DySamplePixelDecoder  # noqa: E402

IN_CHANNELS = [8, 16, 32, 64]
WIDTH = 32
NUM_CLASSES = 3
IMAGE = (64, 96)  # levels at 1/4 .. 1/32


def head_cfg(pixel_decoder, head_type='DySampleMaskFormerHead', **kwargs):
    layer = dict(embed_dims=WIDTH, num_heads=2, batch_first=True)
    cfg = dict(
        type=head_type,
        in_channels=IN_CHANNELS,
        in_index=[0, 1, 2, 3],
        feat_channels=WIDTH,
        out_channels=WIDTH,
        num_classes=NUM_CLASSES,
        num_queries=5,
        pixel_decoder=dict(norm_cfg=dict(type='GN', num_groups=8),
                           **pixel_decoder),
        positional_encoding=dict(num_feats=WIDTH // 2, normalize=True),
        transformer_decoder=dict(
            num_layers=2,
            return_intermediate=True,
            layer_cfg=dict(
                self_attn_cfg=layer,
                cross_attn_cfg=layer,
                ffn_cfg=dict(embed_dims=WIDTH, feedforward_channels=64))),
        loss_cls=dict(
            type='mmdet.CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            class_weight=[1.0] * NUM_CLASSES + [0.1]),
        loss_mask=dict(
            type='mmdet.FocalLoss', use_sigmoid=True, loss_weight=20.0),
        loss_dice=dict(
            type='mmdet.DiceLoss', use_sigmoid=True, naive_dice=True,
            eps=1.0),
        train_cfg=dict(
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.ClassificationCost', weight=1.0),
                    dict(type='mmdet.FocalLossCost', weight=20.0,
                         binary_input=True),
                    dict(type='mmdet.DiceCost', weight=1.0, pred_act=True,
                         eps=1.0)
                ]),
            sampler=dict(type='mmdet.MaskPseudoSampler')))
    cfg.update(kwargs)
    return ConfigDict(cfg)


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(copy.deepcopy(cfg))


def feats(batch=2, grad=False):
    gen = torch.Generator().manual_seed(0)
    h, w = IMAGE
    return [
        torch.rand(batch, c, h // 2**(i + 2), w // 2**(i + 2),
                   generator=gen).requires_grad_(grad)
        for i, c in enumerate(IN_CHANNELS)
    ]


def samples(batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(img_shape=IMAGE, pad_shape=IMAGE, ori_shape=IMAGE,
                          batch_input_shape=IMAGE))
        labels = torch.randint(0, NUM_CLASSES, (1, *IMAGE), generator=gen)
        sample.gt_sem_seg = PixelData(data=labels)
        out.append(sample)
    return out


def shuffled_(module):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return module


def test_default_decoder_is_mmseg_stock_maskformer():
    stock = shuffled_(
        build(head_cfg(dict(type='mmdet.PixelDecoder'), 'MaskFormerHead')))
    ours = build(head_cfg(dict(type='DySamplePixelDecoder')))
    assert type(stock) is MaskFormerHead
    assert isinstance(ours, DySampleMaskFormerHead)
    assert type(ours.pixel_decoder) is DySamplePixelDecoder
    # the projection mmdet only builds for PixelDecoder itself
    assert isinstance(stock.decoder_input_proj, Conv2d)
    assert isinstance(ours.decoder_input_proj, Conv2d)
    assert set(ours.state_dict()) == set(stock.state_dict())
    ours.load_state_dict(stock.state_dict(), strict=True)
    stock.eval(), ours.eval()
    x = feats()
    with torch.no_grad():
        ref = stock(x, samples())
        out = ours(x, samples())
    assert len(out) == len(ref) == 2
    for mine, theirs in zip(out, ref):
        assert torch.equal(mine, theirs)


def test_unprefixed_decoder_name_in_mmseg_scope():
    head = build(head_cfg(dict(type='DySamplePixelDecoder',
                               upsample_cfg='DySample-S+')))
    assert len(head.pixel_decoder.upsample_modules) == 3
    assert head.decoder_input_proj.in_channels == IN_CHANNELS[-1]
    assert head.decoder_input_proj.out_channels == WIDTH


def test_projection_follows_mmdet_condition():
    # no projection when the backbone's last level already has the width,
    # unless enforced, as mmdet does for PixelDecoder
    cfg = head_cfg(dict(type='DySamplePixelDecoder'),
                   in_channels=[8, 16, 32, WIDTH])
    assert isinstance(build(cfg).decoder_input_proj, torch.nn.Identity)
    cfg.enforce_decoder_input_project = True
    assert isinstance(build(cfg).decoder_input_proj, Conv2d)
    # the encoder decoder's memory has the width already: no projection
    encoder = dict(
        type='DySampleTransformerEncoderPixelDecoder',
        encoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=WIDTH, num_heads=2,
                                   batch_first=True),
                ffn_cfg=dict(embed_dims=WIDTH, feedforward_channels=64))),
        positional_encoding=dict(num_feats=WIDTH // 2, normalize=True))
    assert isinstance(build(head_cfg(encoder)).decoder_input_proj,
                      torch.nn.Identity)


def test_dysample_head_loss_backward_and_init():
    head = build(head_cfg(dict(type='DySamplePixelDecoder',
                               upsample_cfg='DySample-S+')))
    with torch.no_grad():
        for param in head.pixel_decoder.upsample_modules.parameters():
            param.normal_(0, 0.5)
    head.init_weights()  # what the Runner calls
    for layer in head.pixel_decoder.upsample_modules:
        assert 0 < layer.offset.weight.std() < 0.002
        assert torch.equal(layer.scope.weight,
                           torch.zeros_like(layer.scope.weight))
    assert head.decoder_input_proj.bias.abs().sum() == 0  # caffe2 init ran

    head.train()
    x = feats(grad=True)
    losses = head.loss(x, samples(), train_cfg=dict())
    assert {'loss_cls', 'loss_mask', 'loss_dice'} <= set(losses)
    total = sum(v for v in losses.values() if v.requires_grad)
    assert torch.isfinite(total)
    total.backward()
    for name, param in head.pixel_decoder.upsample_modules.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert head.decoder_input_proj.weight.grad.abs().sum() > 0

    head.eval()
    with torch.no_grad():
        seg_logits = head.predict(
            feats(), [s.metainfo for s in samples()], test_cfg=dict())
    assert seg_logits.shape == (2, NUM_CLASSES, *IMAGE)
