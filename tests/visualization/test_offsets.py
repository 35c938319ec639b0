# Copyright (c) mmdysample contributors. All rights reserved.
import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdysample import DYSAMPLE_PRESETS, DySample
from mmdysample.utils.model import drop_pretrained
from mmdysample.visualization import (choose_stage, collect_upsampler_inputs,
                                      draw_features, draw_offsets,
                                      feature_to_rgb,
                                      find_upsamplers, image_feature,
                                      positions_from_offsets,
                                      randomize_offsets, sampling_positions,
                                      select_points, visualize_offsets)


def zero_offsets(layer):
    with torch.no_grad():
        layer.offset.weight.zero_()
        layer.offset.bias.zero_()
    return layer


def bilinear_centres(n, groups, h, w, s):
    """``(j * s + sj + 0.5) / s`` and the same for rows, as (x, y)."""
    xs = (torch.arange(w * s, dtype=torch.float64) + 0.5) / s
    ys = (torch.arange(h * s, dtype=torch.float64) + 0.5) / s
    grid = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), dim=-1)
    return grid.expand(n, groups, h * s, w * s, 2)


def read_png(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f'{path} is not a readable image'
    return img


# --------------------------------------------------------------------------
# sampling_positions
# --------------------------------------------------------------------------
@pytest.mark.parametrize('style', ['lp', 'pl'])
@pytest.mark.parametrize('scale, groups', [(2, 1), (2, 4), (4, 2)])
def test_zero_learned_offset_is_bilinear_centres(style, scale, groups):
    layer = zero_offsets(
        DySample(32, scale_factor=scale, style=style, groups=groups))
    feat = torch.randn(2, 32, 3, 5)
    expected = bilinear_centres(2, groups, 3, 5, scale)
    # Dyadic scales: every value is exact in floating point.
    assert torch.equal(sampling_positions(layer, feat), expected)
    assert torch.equal(sampling_positions(layer, feat, learned=False),
                       expected)


def test_zero_learned_offset_scale_3():
    layer = zero_offsets(DySample(18, scale_factor=3, groups=3))
    feat = torch.randn(1, 18, 4, 2)
    # Thirds are rounded once to float32 in the layer's init_pos buffer.
    torch.testing.assert_close(
        sampling_positions(layer, feat),
        bilinear_centres(1, 3, 4, 2, 3),
        rtol=0,
        atol=1e-6)


def test_initial_positions_ignore_learned_offsets():
    layer = DySample(16, groups=2)
    randomize_offsets(layer, torch.randn(1, 16, 4, 4), rms=0.5)
    feat = torch.randn(1, 16, 4, 6)
    assert torch.equal(
        sampling_positions(layer, feat, learned=False),
        bilinear_centres(1, 2, 4, 6, 2))
    assert not torch.equal(
        sampling_positions(layer, feat), bilinear_centres(1, 2, 4, 6, 2))


@pytest.mark.parametrize('scale, groups', [(2, 4), (4, 2)])
def test_known_offset_moves_points_by_exactly_that(scale, groups):
    s, g = scale, groups
    layer = DySample(16, scale_factor=s, groups=g)
    gen = torch.Generator().manual_seed(0)
    # Multiples of 1/8 times scope_factor 0.25: exact in float32.
    bias = torch.randint(-16, 17, (2 * g * s * s, ), generator=gen) / 8
    with torch.no_grad():
        layer.offset.weight.zero_()
        layer.offset.bias.copy_(bias)
    feat = torch.randn(1, 16, 3, 4)
    moved = sampling_positions(layer, feat) - sampling_positions(
        layer, feat, learned=False)
    shift = (bias.double() * 0.25).reshape(2, g, s, s)
    for gi in range(g):
        for si in range(s):
            for sj in range(s):
                block = moved[0, gi, si::s, sj::s]  # (3, 4, 2)
                assert torch.equal(block[..., 0],
                                   shift[0, gi, si, sj].expand(3, 4))
                assert torch.equal(block[..., 1],
                                   shift[1, gi, si, sj].expand(3, 4))


@pytest.mark.parametrize('name', list(DYSAMPLE_PRESETS))
def test_positions_are_where_forward_samples(name):
    """A ramp ``value = x`` (``= y``) read back through the layer's forward
    gives the x (y) of each sampling position, clamped to the border pixel
    centres as ``grid_sample`` clamps."""
    preset = DYSAMPLE_PRESETS[name]
    g = preset['groups']
    h, w, s = 5, 7, 2
    layer = DySample(8 * g, scale_factor=s, **preset)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    xs = (torch.arange(w) + 0.5).view(1, w).expand(h, w)
    ys = (torch.arange(h) + 0.5).view(h, 1).expand(h, w)
    ramps = torch.stack([xs, ys]).repeat(4 * g, 1, 1).unsqueeze(0)
    pos = sampling_positions(layer, ramps)
    assert (pos - sampling_positions(layer, ramps, False)).abs().max() > 0.5
    out = layer(ramps).reshape(1, g, 8, s * h, s * w)
    torch.testing.assert_close(
        out[:, :, 0].double(), pos[..., 0].clamp(0.5, w - 0.5), atol=1e-5,
        rtol=0)
    torch.testing.assert_close(
        out[:, :, 1].double(), pos[..., 1].clamp(0.5, h - 0.5), atol=1e-5,
        rtol=0)


@pytest.mark.parametrize('n, scale, groups, h, w', [(1, 2, 4, 3, 5),
                                                    (2, 3, 2, 4, 4),
                                                    (0, 2, 8, 2, 3)])
def test_positions_shape(n, scale, groups, h, w):
    layer = DySample(16 * 9, scale_factor=scale, groups=groups)
    pos = sampling_positions(layer, torch.randn(n, 16 * 9, h, w))
    assert pos.shape == (n, groups, scale * h, scale * w, 2)
    assert pos.dtype == torch.float64


def test_positions_from_offsets_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r'6 channels.*= 8'):
        positions_from_offsets(torch.zeros(1, 6, 2, 2), 2, 1)


# --------------------------------------------------------------------------
# Finding layers and capturing their inputs
# --------------------------------------------------------------------------
def test_find_upsamplers_in_nested_lists():
    model = nn.Module()
    model.upsamplers = nn.ModuleList(
        [nn.ModuleList(), nn.ModuleList([DySample(8)]),
         nn.ModuleList([DySample(8), DySample(8)])])
    names = [name for name, _ in find_upsamplers(model)]
    assert names == ['upsamplers.1.0', 'upsamplers.2.0', 'upsamplers.2.1']


def test_find_upsamplers_without_dysample():
    with pytest.raises(ValueError, match='Sequential has no DySample layer'):
        find_upsamplers(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(2)))


class _MustNotRun(nn.Module):

    def forward(self, x):
        raise AssertionError('the forward pass went on after the capture')


def test_collect_inputs_stops_after_last_upsampler():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 1), DySample(8), nn.Conv2d(8, 16, 1),
        DySample(16, groups=2), _MustNotRun())
    x = torch.randn(1, 3, 4, 5)
    feats = collect_upsampler_inputs(model, x)
    assert list(feats) == ['1', '3']
    torch.testing.assert_close(feats['1'], model[0](x))
    assert feats['3'].shape == (1, 16, 8, 10)
    assert not feats['3'].requires_grad
    for layer in (model[1], model[3]):
        assert not layer._forward_pre_hooks  # hooks removed


def test_choose_stage():
    layers = [('a', DySample(8)), ('b', DySample(8)), ('c', DySample(8))]
    feats = {
        'a': torch.zeros(1, 8, 4, 4),
        'b': torch.zeros(1, 8, 8, 8),
        'c': torch.zeros(1, 8, 8, 8)
    }
    assert choose_stage(layers, feats) == 1  # largest, first on ties
    assert choose_stage(layers, feats, 2) == 2
    for bad in (3, -1):
        with pytest.raises(ValueError,
                           match=rf'stage={bad} .*3 DySample.*0\.\.2'):
            choose_stage(layers, feats, bad)
    with pytest.raises(ValueError, match="did not reach stage 0 \\('a'\\)"):
        choose_stage(layers, {'b': feats['b']}, 0)


# --------------------------------------------------------------------------
# Points, colours, stand-in inputs
# --------------------------------------------------------------------------
def test_select_points_on_edges():
    feat = torch.zeros(4, 12, 12)
    feat[:, 2:9, 5:] = 1.0  # a rectangle from column 5 on
    points = select_points(feat, 6)
    assert len(points) == 6
    # Every point touches the border of the rectangle.
    for r, c in points:
        window = feat[0, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
        assert window.min() == 0 and window.max() == 1, (r, c)
    inside = select_points(feat, 3, cells=(0, 0, 12, 7))
    assert all(c < 7 for _, c in inside)


def test_select_points_grid_and_flat_maps():
    feat = torch.zeros(2, 6, 9)
    grid = select_points(feat, 6, mode='grid')
    assert len(set(grid)) == 6
    # A flat map has no edges: filled up with grid points.
    assert select_points(feat, 6) == grid
    assert len(select_points(feat, 200)) == 54
    with pytest.raises(ValueError, match="mode must be one of.*'corner'"):
        select_points(feat, 3, mode='corner')
    with pytest.raises(ValueError, match='num_points must be a positive'):
        select_points(feat, 0)


@pytest.mark.parametrize('mode', ['pca', 'mean'])
@pytest.mark.parametrize('channels', [2, 16])
def test_feature_to_rgb_shares_one_mapping(mode, channels):
    feat = torch.randn(channels, 5, 6)
    nearest = F.interpolate(feat[None], scale_factor=2)[0]
    small, big = feature_to_rgb([feat, nearest], mode)
    assert small.shape == (5, 6, 3) and big.shape == (10, 12, 3)
    assert small.min() >= 0 and small.max() <= 1
    np.testing.assert_allclose(big[::2, ::2], small)
    with pytest.raises(ValueError, match='one C'):
        feature_to_rgb([feat, torch.randn(channels + 1, 5, 6)], mode)


def test_image_feature_and_randomize_offsets():
    image = np.random.default_rng(0).integers(0, 256, (37, 50, 3), np.uint8)
    feat = image_feature(image, 32, stride=8)
    assert feat.shape == (1, 32, 5, 7)
    for name, preset in DYSAMPLE_PRESETS.items():
        layer = DySample(32, **preset)
        assert randomize_offsets(layer, feat, rms=0.4) == pytest.approx(
            0.4, rel=1e-3), name
    with pytest.raises(ValueError, match='channels must be a positive int'):
        image_feature(image, 0)


def test_drop_pretrained():
    cfg = dict(
        pretrained='open-mmlab://resnet',
        backbone=dict(
            init_cfg=dict(type='Pretrained', checkpoint='x.pth'), depth=18),
        neck=dict(init_cfg=[
            dict(type='Xavier', layer='Conv2d'),
            dict(type='Pretrained', checkpoint='y.pth')
        ]),
        heads=[dict(init_cfg=dict(type='Pretrained', checkpoint='z.pth'))])
    assert drop_pretrained(cfg) == dict(
        pretrained=None,
        backbone=dict(init_cfg=None, depth=18),
        neck=dict(init_cfg=[dict(type='Xavier', layer='Conv2d')]),
        heads=[dict(init_cfg=None)])
    assert cfg['backbone']['init_cfg']['type'] == 'Pretrained'  # a copy


# --------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def example():
    """A layer with visible random offsets on a stand-in image feature."""
    image = np.zeros((64, 80, 3), np.uint8)
    image[16:48, 24:56] = (230, 40, 40)
    feat = image_feature(image, 16, stride=8)
    layer = DySample(16, groups=2)
    randomize_offsets(layer, feat)
    return layer, feat, image


def test_draw_offsets_writes_png(example, tmp_path):
    layer, feat, image = example
    pos = sampling_positions(layer, feat)[0]
    init = sampling_positions(layer, feat, learned=False)[0]
    out = tmp_path / 'offsets.png'
    draw_offsets(image, pos, init, 2, [(3, 3), (4, 6)], highlight=1,
                 taps=True, region=(8, 8, 72, 56), out_file=str(out))
    assert read_png(out).shape == (600, 600, 3)
    # One group, over a coloured feature map stretched to the image.
    rgb = feature_to_rgb([feat[0]])[0]
    draw_offsets(rgb, pos, init, 2, [(3, 3)], stride=(8.0, 8.0), group=1,
                 out_file=str(tmp_path / 'one_group.png'))
    assert read_png(tmp_path / 'one_group.png').shape == (600, 600, 3)


def test_draw_features_writes_png(example, tmp_path):
    layer, feat, _ = example
    with torch.no_grad():
        up = layer(feat)[0]
    out = tmp_path / 'features.png'
    axes = draw_features(feat[0], up, F.interpolate(feat, scale_factor=2)[0],
                         stride=(8.0, 8.0), mode='mean', out_file=str(out))
    assert len(axes) == 3
    assert read_png(out).shape == (500, 1500, 3)


def test_visualize_offsets_writes_figure(example, tmp_path):
    layer, feat, image = example
    out = tmp_path / 'sub' / 'figure.png'
    result = visualize_offsets(layer, feat, image, str(out), num_points=4,
                               title='test')
    assert result.out_file == str(out)
    assert read_png(out).shape == (1100, 1650, 3)
    assert len(result.points) == 4
    assert result.stride == (8.0, 8.0)
    assert result.offset_rms == pytest.approx(0.3, rel=1e-3)
    # The zoom window surrounds the first point.
    r, c = result.points[0]
    x0, y0, x1, y1 = result.region
    assert x0 <= (c + 0.5) * 8 <= x1 and y0 <= (r + 0.5) * 8 <= y1


def test_visualize_offsets_region_and_group(example, tmp_path):
    layer, feat, image = example
    out = tmp_path / 'region.png'
    result = visualize_offsets(layer, feat, image, str(out), group=1,
                               num_points=3, point_mode='grid',
                               region=(20, 12, 60, 52))
    assert result.region == (20.0, 12.0, 60.0, 52.0)
    for r, c in result.points:  # centres inside the region
        assert 20 <= (c + 0.5) * 8 <= 60 and 12 <= (r + 0.5) * 8 <= 52
    assert read_png(out).shape == (1100, 1650, 3)


def test_drawing_errors(example, tmp_path):
    layer, feat, image = example
    pos = sampling_positions(layer, feat)[0]
    init = sampling_positions(layer, feat, learned=False)[0]
    out = str(tmp_path / 'x.png')
    with pytest.raises(ValueError, match=r'group=2 .*2 groups.*0\.\.1'):
        draw_offsets(image, pos, init, 2, [(1, 1)], group=2)
    with pytest.raises(ValueError, match=r'group=-1 .*0\.\.1'):
        visualize_offsets(layer, feat, image, out, group=-1)
    with pytest.raises(ValueError, match=r'point \(8, 1\) is outside'):
        draw_offsets(image, pos, init, 2, [(8, 1)])
    with pytest.raises(ValueError, match='holds no low-resolution pixel'):
        visualize_offsets(layer, feat, image, out, region=(1, 1, 3, 3))
    with pytest.raises(ValueError, match='x1 > x0'):
        visualize_offsets(layer, feat, image, out, region=(40, 1, 3, 30))
    with pytest.raises(ValueError, match="point_mode must be one of"):
        visualize_offsets(layer, feat, image, out, point_mode='random')
