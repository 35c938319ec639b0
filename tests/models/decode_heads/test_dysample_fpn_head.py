# Copyright (c) mmdysample contributors. All rights reserved.
"""Semantic FPN's head. mmseg has no unit test of ``FPNHead``; the cases
below follow those of its other heads (norms, shapes) on the zoo's
settings."""
import pytest
import torch

pytest.importorskip('mmseg')

from head_checks import (ADE_SIZES, ODD_SIZES, UPSAMPLERS,  # noqa: E402
                         check_trains, conv_has_norm, count_params,
                         make_feats, randomize_, same_signature)
from mmseg.models.decode_heads import FPNHead  # noqa: E402
from mmseg.models.utils import Upsample  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from mmdysample import DySample  # noqa: E402
from mmdysample.models.decode_heads import DySampleFPNHead  # noqa: E402

IN_CHANNELS = [8, 8, 8, 8]
#: The zoo's Semantic FPN: 256-channel FPN levels, a 128-channel head.
ZOO = dict(in_channels=[256] * 4, channels=128)
STEPS = [(1, 1), (2, 1), (2, 3), (3, 1), (3, 3), (3, 5)]


def head_cfg(**kwargs):
    cfg = dict(
        feature_strides=[4, 8, 16, 32],
        in_channels=IN_CHANNELS,
        in_index=[0, 1, 2, 3],
        channels=8,
        num_classes=5,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False)
    cfg.update(kwargs)
    return cfg


def test_signature_matches_stock():
    same_signature(DySampleFPNHead, FPNHead)


@pytest.mark.parametrize('upsample_cfg', [None, 'DySample'])
def test_norms_and_shapes_as_mmseg_tests_its_heads(upsample_cfg):
    head = DySampleFPNHead(**head_cfg(norm_cfg=None,
                                      upsample_cfg=upsample_cfg))
    assert not conv_has_norm(head, sync_bn=False)
    head = DySampleFPNHead(**head_cfg(
        norm_cfg=dict(type='SyncBN'), upsample_cfg=upsample_cfg))
    assert conv_has_norm(head, sync_bn=True)
    # 45 / 21 / 11 / 5: not a 2x pyramid (the final resize fits it)
    head = DySampleFPNHead(**head_cfg(upsample_cfg=upsample_cfg))
    sizes = [(45, 45), (21, 21), (11, 11), (5, 5)]
    assert head(make_feats(IN_CHANNELS, sizes)).shape == (2, 5, 45, 45)


# ---------------------------------------------------------------------------
# the default is the stock head, bit for bit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize(
    'sizes', [[(45, 45), (21, 21), (11, 11), (5, 5)], ADE_SIZES])
def test_default_equals_stock(sizes, align_corners):
    cfg = head_cfg(align_corners=align_corners)
    stock = randomize_(FPNHead(**cfg)).eval()
    head = DySampleFPNHead(**cfg).eval()
    assert head.upsample_positions == ()
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, sizes, batch=1)
    with torch.no_grad():
        expected = stock(feats)
        out = head(feats)
    assert out.shape == (1, 5, *sizes[0])
    assert torch.equal(out, expected)
    assert count_params(head) == count_params(stock)


def test_bilinear_steps_equal_stock_on_a_2x_pyramid():
    """The learnable path, pinned to the stock forward: x2 bilinear layers
    in place of mmseg's x2 bilinear ``Upsample`` entries."""
    cfg = head_cfg()
    stock = randomize_(FPNHead(**cfg)).eval()
    head = DySampleFPNHead(upsample_cfg='bilinear', **cfg).eval()
    head.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, [(32, 40), (16, 20), (8, 10), (4, 5)])
    with torch.no_grad():
        assert torch.equal(head(feats), stock(feats))


# ---------------------------------------------------------------------------
# in place: keys and positions
# ---------------------------------------------------------------------------
def test_steps_replace_the_upsample_entries_in_place():
    stock = randomize_(FPNHead(**head_cfg()))
    head = DySampleFPNHead(**head_cfg(upsample_cfg='DySample'))
    assert [(i, j) for i, j, _ in head.upsample_positions] == STEPS
    # each step is guided by the input level of the stride it produces
    assert [level for *_, level in head.upsample_positions] == [
        0, 1, 0, 2, 1, 0
    ]
    for i, j in STEPS:
        assert isinstance(stock.scale_heads[i][j], Upsample)
        assert isinstance(head.scale_heads[i][j], DySample)
    assert not any(isinstance(m, Upsample) for m in head.modules())
    result = head.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {
        f'scale_heads.{i}.{j}.{leaf}'
        for i, j in STEPS
        for leaf in ('offset.weight', 'offset.bias', 'init_pos')
    }
    for key, value in stock.state_dict().items():
        assert torch.equal(head.state_dict()[key], value), key


def test_init_keeps_the_upsamplers_init():
    head = DySampleFPNHead(**head_cfg(
        upsample_cfg='DySample',
        init_cfg=dict(type='Constant', layer='Conv2d', val=1.)))
    head.init_weights()
    assert (head.scale_heads[3][4].conv.weight == 1).all()
    for i, j in STEPS:
        assert 0.0005 < head.scale_heads[i][j].offset.weight.std() < 0.0015


# ---------------------------------------------------------------------------
# every upsampler at the zoo's channels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_trains_at_zoo_channels(name):
    head = DySampleFPNHead(**head_cfg(upsample_cfg=name, **ZOO))
    layers = head.upsample_layers()
    assert len(layers) == 6 and len({id(m) for m in layers}) == 6
    out = check_trains(head, make_feats(ZOO['in_channels'], ODD_SIZES))
    assert out.shape == (2, 5, *ODD_SIZES[0])


def test_carafe_builds_at_zoo_channels():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    head = DySampleFPNHead(**head_cfg(upsample_cfg='carafe', **ZOO))
    assert all(isinstance(m, CARAFEPack) for m in head.upsample_layers())


def test_ade_sizes_with_a_learnable_step():
    head = DySampleFPNHead(**head_cfg(upsample_cfg='DySample-S')).eval()
    with torch.no_grad():
        out = head(make_feats(IN_CHANNELS, ADE_SIZES, batch=1))
    assert out.shape == (1, 5, *ADE_SIZES[0])


# ---------------------------------------------------------------------------
# registry and errors
# ---------------------------------------------------------------------------
def test_mmseg_registry_builds_it():
    head = MODELS.build(
        dict(type='DySampleFPNHead', upsample_cfg='DySample+', **head_cfg()))
    assert isinstance(head, FPNHead)
    assert len(head.upsample_layers()) == 6
    assert "upsample_cfg='DySample+'" in repr(head)


def test_wrong_guide_is_a_value_error_naming_host_and_step():
    head = DySampleFPNHead(**head_cfg(upsample_cfg='FADE'))
    feats = make_feats(IN_CHANNELS, [(40, 40), (20, 20), (5, 5), (3, 3)])
    with pytest.raises(ValueError,
                       match=r'DySampleFPNHead stage 2\.0: the guide of '
                       r'shape \(2, 8, 20, 20\)'):
        head(feats)


def test_guided_step_without_a_level_is_a_value_error():
    cfg = head_cfg(feature_strides=[4, 16], in_channels=[8, 8],
                   in_index=[0, 1])
    head = DySampleFPNHead(upsample_cfg='DySample', **cfg)
    # the 1/16 level takes two steps; the first lands on stride 8
    assert [lvl for *_, lvl in head.upsample_positions] == [None, 0]
    feats = make_feats([8, 8], [(32, 32), (8, 8)])
    assert head(feats).shape == (2, 5, 32, 32)
    with pytest.raises(ValueError, match=r'feature_strides=\[4, 16\]'):
        DySampleFPNHead(upsample_cfg='FADE', **cfg)


def test_bad_upsample_cfg():
    with pytest.raises(TypeError, match='upsample_cfg'):
        DySampleFPNHead(**head_cfg(upsample_cfg=3))
    with pytest.raises(KeyError, match='NoSuchUpsampler'):
        DySampleFPNHead(**head_cfg(upsample_cfg='NoSuchUpsampler'))
