# Copyright (c) mmdysample contributors. All rights reserved.
import pytest
import torch

pytest.importorskip('mmseg')

from head_checks import (ADE_SIZES, ODD_SIZES, UPSAMPLERS,  # noqa: E402
                         check_trains, conv_has_norm, count_params,
                         make_feats, randomize_, same_signature)
from mmseg.models.decode_heads import DepthwiseSeparableASPPHead  # noqa
from mmseg.registry import MODELS  # noqa: E402

from mmdysample import DySample  # noqa: E402
from mmdysample.models.decode_heads import \
    DySampleDepthwiseSeparableASPPHead as Head  # noqa: E402

#: The zoo's DeepLabV3+ (R50-D8): decoder width 512, c1 = ResNet's stride-4
#: level (256 channels) projected to 48. The ASPP input (2048 in the zoo)
#: is small here: it does not reach the upsampler.
ZOO = dict(channels=512, c1_in_channels=256, c1_channels=48)


def head_cfg(**kwargs):
    cfg = dict(
        c1_in_channels=8,
        c1_channels=4,
        in_channels=16,
        in_index=1,
        channels=16,
        dilations=(1, 2, 3),
        num_classes=5,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False)
    cfg.update(kwargs)
    return cfg


def two_levels(c1, x, sizes, batch=2, grad=False):
    """``inputs[0]`` (c1) and ``inputs[1]`` (the ASPP input)."""
    return make_feats([c1, x], sizes, batch=batch, grad=grad)


# ---------------------------------------------------------------------------
# mmseg's own test cases, with our class in place of mmseg's
# ---------------------------------------------------------------------------
# Re-typed from mmsegmentation's tests/test_models/test_heads/
# test_aspp_head.py::test_dw_aspp_head (OpenMMLab, Apache-2.0; v1.2.2),
# the DepthwiseSeparableASPPHead part.
def test_mmseg_dw_aspp_head_cases():
    # test w.o. c1
    inputs = [torch.randn(1, 32, 45, 45)]
    head = Head(
        c1_in_channels=0,
        c1_channels=0,
        in_channels=32,
        channels=16,
        num_classes=19,
        dilations=(1, 12, 24))
    assert head.c1_bottleneck is None
    assert head.aspp_modules[0].conv.dilation == (1, 1)
    assert head.aspp_modules[1].depthwise_conv.dilation == (12, 12)
    assert head.aspp_modules[2].depthwise_conv.dilation == (24, 24)
    outputs = head(inputs)
    assert outputs.shape == (1, head.num_classes, 45, 45)

    # test with c1
    for upsample_cfg in (None, 'DySample'):
        inputs = [torch.randn(1, 8, 45, 45), torch.randn(1, 32, 21, 21)]
        head = Head(
            c1_in_channels=8,
            c1_channels=4,
            in_channels=32,
            channels=16,
            num_classes=19,
            dilations=(1, 12, 24),
            upsample_cfg=upsample_cfg)
        assert head.c1_bottleneck.in_channels == 8
        assert head.c1_bottleneck.out_channels == 4
        assert head.aspp_modules[0].conv.dilation == (1, 1)
        assert head.aspp_modules[1].depthwise_conv.dilation == (12, 12)
        assert head.aspp_modules[2].depthwise_conv.dilation == (24, 24)
        outputs = head(inputs)
        assert outputs.shape == (1, head.num_classes, 45, 45)


def test_mmseg_norm_cases():
    # from test_aspp_head.py::test_aspp_head (the base ASPPHead's checks)
    for upsample_cfg in (None, 'DySample'):
        head = Head(**head_cfg(norm_cfg=None, upsample_cfg=upsample_cfg))
        assert not conv_has_norm(head, sync_bn=False)
        head = Head(**head_cfg(
            norm_cfg=dict(type='SyncBN'), upsample_cfg=upsample_cfg))
        assert conv_has_norm(head, sync_bn=True)


def test_signature_matches_stock():
    same_signature(Head, DepthwiseSeparableASPPHead)


# ---------------------------------------------------------------------------
# the default is the stock head, bit for bit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('sizes', [
    [(45, 45), (21, 21)],  # mmseg's test sizes
    ADE_SIZES[:2],  # 512 x 683 at output stride 8 (-d8): c1 128 x 171
    [ADE_SIZES[0], ADE_SIZES[2]],  # output stride 16: x4
])
def test_default_equals_stock(sizes, align_corners):
    cfg = head_cfg(align_corners=align_corners)
    stock = randomize_(DepthwiseSeparableASPPHead(**cfg)).eval()
    head = Head(**cfg).eval()
    assert head.upsample_modules is None
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = two_levels(8, 16, sizes, batch=1)
    with torch.no_grad():
        expected = stock(feats)
        out = head(feats)
    assert out.shape == (1, 5, *sizes[0])
    assert torch.equal(out, expected)
    assert count_params(head) == count_params(stock)


@pytest.mark.parametrize('align_corners', [False, True])
def test_bilinear_step_equals_stock_on_a_2x_pair(align_corners):
    """The learnable path, pinned to the stock forward: a x2 bilinear layer
    where the stock head resizes to exactly twice the size."""
    cfg = head_cfg(align_corners=align_corners)
    stock = randomize_(DepthwiseSeparableASPPHead(**cfg)).eval()
    head = Head(upsample_cfg=dict(type='bilinear',
                                  align_corners=align_corners), **cfg).eval()
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = two_levels(8, 16, [(32, 42), (16, 21)], batch=1)
    with torch.no_grad():
        assert torch.equal(head(feats), stock(feats))


# ---------------------------------------------------------------------------
# every upsampler at the zoo's channels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_trains_at_zoo_channels(name):
    head = Head(**head_cfg(upsample_cfg=name, **ZOO))
    (layer, ) = head.upsample_modules
    if name == 'FreqFusion':
        # it adds its guide to its output: the c1 features brought to 512
        assert layer.guide_channels == 512
        assert head.upsample_guide.conv.in_channels == 256
    else:
        # the others read the c1 features (256 channels) themselves
        assert head.upsample_guide is None
        assert getattr(layer, 'guide_channels', 256) == 256
    feats = two_levels(256, 16, ODD_SIZES[:2])
    out = check_trains(head, feats)
    assert out.shape == (2, 5, *ODD_SIZES[0])


def test_x4_step_at_output_stride_16():
    head = Head(**head_cfg(upsample_cfg='DySample', upsample_scale=4))
    assert head.upsample_modules[0].scale_factor == 4
    feats = two_levels(8, 16, [ADE_SIZES[0], ADE_SIZES[2]], batch=1)
    with torch.no_grad():
        assert head.eval()(feats).shape == (1, 5, *ADE_SIZES[0])
        guided = Head(**head_cfg(upsample_cfg='FADE', upsample_scale=4))
        assert guided.eval()(feats).shape == (1, 5, *ADE_SIZES[0])


def test_carafe_builds_at_zoo_channels():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    head = Head(**head_cfg(upsample_cfg='carafe', **ZOO))
    assert isinstance(head.upsample_modules[0], CARAFEPack)


# ---------------------------------------------------------------------------
# keys, init, registry, errors
# ---------------------------------------------------------------------------
def test_keys_stock_checkpoint_and_init():
    stock = randomize_(DepthwiseSeparableASPPHead(**head_cfg()))
    head = Head(**head_cfg(upsample_cfg='DySample'))
    result = head.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {
        'upsample_modules.0.offset.weight', 'upsample_modules.0.offset.bias',
        'upsample_modules.0.init_pos'
    }
    head.init_cfg = dict(type='Constant', layer='Conv2d', val=1.)
    head.init_weights()
    assert (head.conv_seg.weight == 1).all()
    assert 0.0005 < head.upsample_modules[0].offset.weight.std() < 0.0015


def test_mmseg_registry_builds_it():
    head = MODELS.build(
        dict(
            type='DySampleDepthwiseSeparableASPPHead',
            upsample_cfg='DySample-S+',
            **head_cfg()))
    assert isinstance(head, DepthwiseSeparableASPPHead)
    assert isinstance(head.upsample_modules[0], DySample)
    assert "upsample_cfg='DySample-S+', upsample_scale=2" in repr(head)


def test_no_c1_with_learnable_upsample_cfg_is_a_value_error():
    with pytest.raises(ValueError, match='c1_in_channels=0'):
        Head(**head_cfg(c1_in_channels=0, c1_channels=0,
                        upsample_cfg='DySample'))
    # the stock head without a decoder still builds
    assert Head(**head_cfg(c1_in_channels=0, c1_channels=0)).c1_bottleneck \
        is None


def test_wrong_guide_is_a_value_error_naming_host_and_step():
    head = Head(**head_cfg(upsample_cfg='FADE'))
    # a x4 pyramid for a x2 step
    feats = two_levels(8, 16, [(40, 40), (10, 10)])
    with pytest.raises(ValueError,
                       match=r'DySampleDepthwiseSeparableASPPHead stage 0: '
                       r'the guide of shape \(2, 8, 40, 40\)'):
        head(feats)


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(upsample_cfg=3), TypeError, 'upsample_cfg'),
    (dict(upsample_cfg='NoSuchUpsampler'), KeyError, 'NoSuchUpsampler'),
    (dict(upsample_cfg='DySample', upsample_scale=1), ValueError,
     'upsample_scale'),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Head(**head_cfg(**kwargs))
