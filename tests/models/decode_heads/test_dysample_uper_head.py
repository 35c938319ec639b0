# Copyright (c) mmdysample contributors. All rights reserved.
import pytest
import torch

pytest.importorskip('mmseg')

from head_checks import (ADE_SIZES, ODD_SIZES, UPSAMPLERS,  # noqa: E402
                         check_trains, conv_has_norm, count_params,
                         make_feats, randomize_, same_signature)
from mmseg.models.decode_heads import UPerHead  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from mmdysample import DYSAMPLE_PRESETS, DySample  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.decode_heads import DySampleUPerHead  # noqa: E402

IN_CHANNELS = [8, 16, 24, 32]
#: The zoo's UPerNet decoder width (R50, Swin-T); the backbone channels are
#: small to keep the test cheap (they do not reach the upsamplers).
ZOO_CHANNELS = 512


def head_cfg(**kwargs):
    cfg = dict(
        in_channels=IN_CHANNELS,
        in_index=[0, 1, 2, 3],
        channels=16,
        pool_scales=(1, 2, 3, 6),
        num_classes=5,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False)
    cfg.update(kwargs)
    return cfg


# ---------------------------------------------------------------------------
# mmseg's own test cases, with our class in place of mmseg's
# ---------------------------------------------------------------------------
# Re-typed from mmsegmentation's tests/test_models/test_heads/
# test_uper_head.py::test_uper_head (OpenMMLab, Apache-2.0; v1.2.2). Its
# ``kernel_update`` case is left out: UPerHead 1.2.2 has no such argument.
@pytest.mark.parametrize('upsample_cfg',
                         [None, dict(type='DySample', groups=2)])
def test_mmseg_uper_head_cases(upsample_cfg):
    extra = dict(upsample_cfg=upsample_cfg)
    with pytest.raises(AssertionError):
        # fpn_in_channels must be list|tuple
        DySampleUPerHead(in_channels=4, channels=2, num_classes=19, **extra)

    # test no norm_cfg
    head = DySampleUPerHead(
        in_channels=[4, 2], channels=2, num_classes=19, in_index=[-2, -1],
        **extra)
    assert not conv_has_norm(head, sync_bn=False)

    # test with norm_cfg (DySample has no ConvModule: none without norm)
    head = DySampleUPerHead(
        in_channels=[4, 2],
        channels=2,
        num_classes=19,
        norm_cfg=dict(type='SyncBN'),
        in_index=[-2, -1],
        **extra)
    assert conv_has_norm(head, sync_bn=True)

    # 45 and 21: not a 2x pyramid
    inputs = [torch.randn(1, 4, 45, 45), torch.randn(1, 2, 21, 21)]
    head = DySampleUPerHead(
        in_channels=[4, 2], channels=2, num_classes=19, in_index=[-2, -1],
        **extra)
    outputs = head(inputs)
    assert outputs.shape == (1, head.num_classes, 45, 45)


def test_signature_matches_uper_head():
    same_signature(DySampleUPerHead, UPerHead)


# ---------------------------------------------------------------------------
# the default is the stock head, bit for bit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('sizes', [
    [(45, 45), (21, 21), (11, 11), (5, 5)],  # mmseg's test sizes
    ADE_SIZES,
])
def test_default_equals_stock(sizes, align_corners):
    cfg = head_cfg(align_corners=align_corners, channels=8)
    stock = randomize_(UPerHead(**cfg)).eval()
    head = DySampleUPerHead(**cfg).eval()
    assert head.upsample_modules is None
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, sizes, batch=1)
    with torch.no_grad():
        expected = stock(feats)
        out = head(feats)
    assert out.shape == (1, 5, *sizes[0])
    assert torch.equal(out, expected)
    assert count_params(head) == count_params(stock)


@pytest.mark.parametrize('sizes', [ADE_SIZES, ODD_SIZES])
def test_nearest_steps_equal_stock_nearest(sizes):
    """The learnable path, pinned to the stock forward: an x2 nearest layer
    cropped by ``fit_to_size`` picks the pixels of a nearest resize to the
    lateral's size, so with mmseg's resize made nearest the two agree."""
    import mmseg.models.decode_heads.uper_head as uper_module
    cfg = head_cfg(channels=8)
    stock = randomize_(UPerHead(**cfg)).eval()
    head = DySampleUPerHead(upsample_cfg='nearest', **cfg).eval()
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, sizes, batch=1)
    resize = uper_module.resize
    calls = []

    def top_down_nearest(input, size=None, mode='nearest', **kwargs):
        calls.append(size)
        # the three top-down resizes come first, the fusion ones after
        if len(calls) <= 3:
            return resize(input, size=size, mode='nearest')
        return resize(input, size=size, mode=mode, **kwargs)

    with torch.no_grad():
        out = head(feats)
        uper_module.resize = top_down_nearest
        try:
            expected = stock(feats)
        finally:
            uper_module.resize = resize
    assert len(calls) == 6
    assert torch.equal(out, expected)


# ---------------------------------------------------------------------------
# every upsampler at the zoo's channels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_trains_at_zoo_channels(name):
    head = DySampleUPerHead(**head_cfg(
        channels=ZOO_CHANNELS, pool_scales=(1, 2), upsample_cfg=name))
    assert len(head.upsample_modules) == 3
    assert len({id(m) for m in head.upsample_modules}) == 3
    out = check_trains(head, make_feats(IN_CHANNELS, ODD_SIZES))
    assert out.shape == (2, 5, *ODD_SIZES[0])


def test_carafe_builds_at_zoo_channels():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    head = DySampleUPerHead(**head_cfg(
        channels=ZOO_CHANNELS, upsample_cfg='carafe'))
    assert all(isinstance(m, CARAFEPack) and m.channels == ZOO_CHANNELS
               for m in head.upsample_modules)


@pytest.mark.parametrize('name,per_step', [('DySample', 16416),
                                           ('DySample+', 32800),
                                           ('DySample-S', 2064),
                                           ('DySample-S+', 4112)])
def test_parameter_delta_is_three_upsamplers(name, per_step):
    stock = UPerHead(**head_cfg(channels=ZOO_CHANNELS))
    head = DySampleUPerHead(**head_cfg(
        channels=ZOO_CHANNELS, upsample_cfg=name))
    assert count_params(build_upsampler(name, ZOO_CHANNELS)) == per_step
    assert count_params(head) - count_params(stock) == 3 * per_step


# ---------------------------------------------------------------------------
# keys, init, registry, errors
# ---------------------------------------------------------------------------
def test_keys_stock_checkpoint_and_init():
    stock = randomize_(UPerHead(**head_cfg()))
    head = DySampleUPerHead(**head_cfg(upsample_cfg='DySample+'))
    result = head.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {
        f'upsample_modules.{i}.{leaf}'
        for i in range(3)
        for leaf in ('offset.weight', 'offset.bias', 'scope.weight',
                     'init_pos')
    }
    head.init_cfg = dict(type='Constant', layer='Conv2d', val=1.)
    head.init_weights()
    assert (head.conv_seg.weight == 1).all()
    for layer in head.upsample_modules:
        assert 0.0005 < layer.offset.weight.std() < 0.0015


def test_mmseg_registry_builds_it():
    head = MODELS.build(
        dict(type='DySampleUPerHead', upsample_cfg=dict(
            type='DySample', groups=2), **head_cfg()))
    assert isinstance(head, DySampleUPerHead) and isinstance(head, UPerHead)
    assert {m.groups for m in head.upsample_modules} == {2}
    assert "upsample_cfg={'type': 'DySample', 'groups': 2}" in repr(head)


def test_wrong_guide_is_a_value_error_naming_host_and_step():
    head = DySampleUPerHead(**head_cfg(upsample_cfg='FADE'))
    # levels 3x apart: no guide fits the x2 step
    feats = make_feats(IN_CHANNELS, [(45, 45), (15, 15), (5, 5), (2, 2)])
    with pytest.raises(ValueError,
                       match=r'DySampleUPerHead stage 2: the guide of shape '
                       r'\(2, 16, 5, 5\)'):
        head(feats)


@pytest.mark.parametrize('cfg,exc,match', [
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(groups=2), KeyError, 'type'),
    (3, TypeError, 'upsample_cfg'),
    (dict(type='DySample', groups=3), ValueError, 'groups'),
])
def test_bad_upsample_cfg(cfg, exc, match):
    with pytest.raises(exc, match=match):
        DySampleUPerHead(**head_cfg(upsample_cfg=cfg))


def test_presets_are_dysample():
    for name in DYSAMPLE_PRESETS:
        head = DySampleUPerHead(**head_cfg(upsample_cfg=name))
        assert all(isinstance(m, DySample) for m in head.upsample_modules)
