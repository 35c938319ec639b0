# Copyright (c) mmdysample contributors. All rights reserved.
import math

import pytest
import torch

pytest.importorskip('mmseg')
pytest.importorskip('mmcv.ops')

from host_checks import (check_trains, count_params, make_feats,  # noqa: E402
                         randomize_)
from mmcv.ops import MultiScaleDeformableAttention  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from mmdysample.models.depth import (HAHIHeteroNeck,  # noqa: E402
                                     sine_position_embedding)

SWIN_T = [64, 96, 192, 384, 768]
SLIM = [8, 16, 32, 64, 128]
#: DepthFormerSwin's levels for a 45 x 61 image (stem first).
ODD_SIZES = [(23, 31), (12, 16), (6, 8), (3, 4), (2, 2)]


def slim(**kwargs):
    cfg = dict(
        in_channels=SLIM, out_channels=SLIM, embedding_dim=32, num_points=2)
    cfg.update(kwargs)
    return HAHIHeteroNeck(**cfg)


def toolbox_params(channels, dim=256, heads=8, points=8):
    """The toolbox's HAHIHeteroNeck, counted from its layer shapes: 1x1 /
    3x3 ConvModules with BN (no conv bias), two deformable attentions
    (offsets, weights, value and output projections), the reference-point
    linear and the level embeddings."""
    def conv(cin, cout, k):
        return cin * cout * k * k + 2 * cout
    levels = len(channels) - 1
    count = sum(conv(c, c, 1) for c in channels)
    count += sum(conv(c, dim, 1) + conv(c + dim, c, 3) for c in channels[1:])
    count += conv(channels[0], dim, 1) + conv(channels[0] + dim, channels[0],
                                              3)
    attention = (dim + 1) * heads * levels * points * 2 + (dim + 1) * (
        heads * levels * points) + 2 * (dim + 1) * dim
    return count + 2 * attention + (dim + 1) * 2 + levels * dim


def test_parameter_count_is_the_toolbox_one():
    neck = HAHIHeteroNeck(
        in_channels=SWIN_T,
        out_channels=SWIN_T,
        embedding_dim=256,
        positional_encoding=dict(type='SinePositionalEncoding', num_feats=128),
        scales=[1, 1, 1, 1, 1])
    assert count_params(neck) == toolbox_params(SWIN_T) == 12_392_834
    assert count_params(slim()) == toolbox_params(SLIM, dim=32, points=2)


@pytest.mark.parametrize('sizes', [ODD_SIZES, [(16, 16), (8, 8), (4, 4),
                                                (2, 2), (1, 1)]])
def test_shapes_and_channels_are_kept(sizes):
    neck = slim().eval()
    with torch.no_grad():
        outs = neck(make_feats(SLIM, sizes))
    assert [tuple(o.shape) for o in outs] == [(2, c, *s)
                                              for c, s in zip(SLIM, sizes)]


def test_without_attention_it_is_the_fusion_convs():
    """``self_att=False, cross_att=False``: each level's fusion conv reads
    its projection and its own embedding, put back where it came from."""
    neck = randomize_(slim(self_att=False, cross_att=False)).eval()
    feats = make_feats(SLIM, ODD_SIZES)
    with torch.no_grad():
        outs = neck(feats)
        lat = [conv(x) for conv, x in zip(neck.lateral_convs, feats)]
        expected = [
            neck.conv_fusion(torch.cat([neck.conv_proj(lat[0]), lat[0]], 1))
        ] + [
            fusion(torch.cat([x, proj(x)], 1)) for x, proj, fusion in zip(
                lat[1:], neck.trans_proj, neck.trans_fusion)
        ]
    for out, ref in zip(outs, expected):
        assert torch.equal(out, ref)


def perturbed_outputs(neck, level):
    feats = make_feats(SLIM, ODD_SIZES, batch=1)
    changed = [f.clone() for f in feats]
    changed[level] = changed[level] + 1
    with torch.no_grad():
        return neck(feats), neck(changed)


@pytest.mark.parametrize('cross_att', [True, False])
def test_the_stem_queries_the_transformer_levels(cross_att):
    neck = slim(cross_att=cross_att).eval()
    before, after = perturbed_outputs(neck, level=4)
    assert torch.equal(before[0], after[0]) is not cross_att


@pytest.mark.parametrize('self_att', [True, False])
def test_the_transformer_levels_attend_to_each_other(self_att):
    neck = slim(self_att=self_att).eval()
    before, after = perturbed_outputs(neck, level=4)  # the coarsest
    assert torch.equal(before[1], after[1]) is not self_att
    # the stem's level never reaches the transformer levels
    before, after = perturbed_outputs(neck, level=0)
    assert all(torch.equal(b, a) for b, a in zip(before[1:], after[1:]))


def test_every_parameter_trains():
    """After one step: at init the attentions' offset and weight linears
    are zero (mmcv's init), so the level embeddings, which reach the output
    only through them, get no gradient yet (by design, as in the
    toolbox)."""
    neck = slim()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for attention in (neck.self_attn, neck.multi_att):
            for linear in (attention.sampling_offsets,
                           attention.attention_weights):
                linear.weight.normal_(std=0.01, generator=gen)
    outs = check_trains(neck, lambda module: module(make_feats(SLIM,
                                                               ODD_SIZES)))
    assert len(outs) == 5


def test_scales_resize_the_transformer_levels():
    neck = slim(scales=[2, 1, 0.5, 1]).eval()
    with torch.no_grad():
        outs = neck(make_feats(SLIM, [(16, 16), (8, 8), (4, 4), (2, 2),
                                      (1, 1)]))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 16), (16, 16), (4, 4),
                                                  (1, 1), (1, 1)]


def reference_embedding(height, width, num_feats, temperature=10000.,
                        normalize=False, scale=2 * math.pi, eps=1e-6):
    """DETR's sine embedding pixel by pixel."""
    out = torch.zeros(2 * num_feats, height, width, dtype=torch.float64)
    for y in range(height):
        for x in range(width):
            for half, pos, extent in ((0, y + 1, height), (1, x + 1, width)):
                if normalize:
                    pos = pos / (extent + eps) * scale
                for c in range(num_feats):
                    angle = pos / temperature**(2 * (c // 2) / num_feats)
                    value = math.sin(angle) if c % 2 == 0 else math.cos(angle)
                    out[half * num_feats + c, y, x] = value
    return out[None]


@pytest.mark.parametrize('kwargs', [dict(), dict(normalize=True),
                                    dict(temperature=20.)])
def test_sine_embedding_matches_the_formula(kwargs):
    pos = sine_position_embedding(5, 7, num_feats=8, **kwargs)
    torch.testing.assert_close(
        pos.double(), reference_embedding(5, 7, 8, **kwargs), rtol=0,
        atol=1e-5)


def test_reference_points_are_pixel_centres():
    points = HAHIHeteroNeck._centres([(3, 4), (1, 2)], 2, torch.zeros(1))
    assert points.shape == (2, 14, 2, 2)
    torch.testing.assert_close(points[0, :4, 0],
                               torch.tensor([[0.125, 1 / 6], [0.375, 1 / 6],
                                             [0.625, 1 / 6], [0.875, 1 / 6]]))
    torch.testing.assert_close(points[1, 12:, 1],
                               torch.tensor([[0.25, 0.5], [0.75, 0.5]]))


def test_init_weights_is_the_toolbox_one():
    torch.manual_seed(0)
    neck = slim()
    neck.init_weights()
    assert neck.reference_points.bias.abs().sum() == 0
    assert 0.7 < neck.level_embed.std() < 1.3
    for attention in (neck.self_attn, neck.multi_att):
        assert isinstance(attention, MultiScaleDeformableAttention)
        assert attention.sampling_offsets.weight.abs().sum() == 0
        assert attention.attention_weights.weight.abs().sum() == 0
    conv = neck.trans_fusion[0].conv
    bound = math.sqrt(6 / (conv.weight[0].numel() + conv.weight[:, 0].numel()))
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.9 * bound


@pytest.mark.parametrize('kwargs,match', [
    (dict(out_channels=SLIM[:4]), 'out_channels'),
    (dict(in_channels=[8], out_channels=[8]), 'in_channels'),
    (dict(embedding_dim=36), 'num_heads'),
    (dict(positional_encoding=dict(num_feats=8)), 'num_feats'),
    (dict(positional_encoding=dict(type='LearnedPositionalEncoding')),
     'SinePositionalEncoding'),
    (dict(scales=[1, 1]), 'scales'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        slim(**kwargs)


def test_registry_and_wrong_number_of_inputs():
    neck = MODELS.build(
        dict(type='HAHIHeteroNeck', in_channels=SLIM, out_channels=SLIM,
             embedding_dim=32))
    assert isinstance(neck, HAHIHeteroNeck)
    with pytest.raises(ValueError, match='expects 5 inputs'):
        neck(make_feats(SLIM[1:], ODD_SIZES[1:]))
