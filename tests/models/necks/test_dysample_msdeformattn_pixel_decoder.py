# Copyright (c) mmdysample contributors. All rights reserved.
"""DySampleMSDeformAttnPixelDecoder against mmdet's MSDeformAttnPixelDecoder
(Mask2Former): mmdet's own test case, stock equality, every upsampler at the
R50 model's channels, the step's input and guide, init and errors."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmdet')

from mmdet.models.layers import MSDeformAttnPixelDecoder  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from host_checks import (UPSAMPLERS, Probe, check_trains,  # noqa: E402
                         count_params, make_feats, randomize_, same_signature,
                         weighted_sum)

from mmdysample import DySample  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.necks import \
    DySampleMSDeformAttnPixelDecoder  # noqa: E402
from mmdysample.utils.host_swap import drop_in_hosts  # noqa: E402

IN_CHANNELS = [8, 16, 24, 32]
FEAT = 32  # GroupNorm(32) of the stock decoder and of SAPA-B / A2U
#: The Mask2Former R50 decoder width (mmdet's and mmseg's configs).
ZOO_FEAT = 256
EVEN_SIZES = [(16, 24), (8, 12), (4, 6), (2, 3)]
#: An ADE20K validation image, 512 x 683, through a stride-4..32 backbone.
ADE_SIZES = [(128, 171), (64, 86), (32, 43), (16, 22)]
SMALL_ODD = [(9, 11), (5, 6), (3, 3), (2, 2)]


def encoder(embed_dims=FEAT, num_layers=1, num_heads=2):
    return ConfigDict(
        num_layers=num_layers,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=num_heads,
                num_levels=3,
                num_points=2,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=2 * embed_dims)))


def decoder_kwargs(feat=FEAT, **kwargs):
    cfg = dict(
        in_channels=IN_CHANNELS,
        strides=[4, 8, 16, 32],
        feat_channels=feat,
        out_channels=feat,
        num_outs=3,
        encoder=encoder(feat, num_heads=8 if feat == ZOO_FEAT else 2),
        positional_encoding=dict(num_feats=feat // 2, normalize=True))
    cfg.update(kwargs)
    return cfg


def decoder(upsample_cfg=None, **kwargs):
    return DySampleMSDeformAttnPixelDecoder(
        upsample_cfg=upsample_cfg, **decoder_kwargs(**kwargs))


def stock(**kwargs):
    return MSDeformAttnPixelDecoder(**decoder_kwargs(**kwargs))


def flat(out):
    mask_feature, multi_scale = out
    return [mask_feature, *multi_scale]


# ---------------------------------------------------------------------------
# mmdet's own test case, with our class in place of mmdet's
# ---------------------------------------------------------------------------
# Re-typed from mmdetection's tests/test_models/test_layers/test_plugins.py::
# TestMSDeformAttnPixelDecoder::test_forward (OpenMMLab, Apache-2.0; read at
# commit 130a620, the 3.x branch), built under our type name.
@pytest.mark.parametrize('upsample_cfg', [None, 'DySample', 'FADE'])
def test_mmdet_msdeformattn_pixel_decoder_case(upsample_cfg):
    base_channels = 64
    pixel_decoder_cfg = ConfigDict(
        dict(
            type='DySampleMSDeformAttnPixelDecoder',
            in_channels=[base_channels * 2**i for i in range(4)],
            strides=[4, 8, 16, 32],
            feat_channels=base_channels,
            out_channels=base_channels,
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            encoder=dict(  # DeformableDetrTransformerEncoder
                num_layers=6,
                layer_cfg=dict(  # DeformableDetrTransformerEncoderLayer
                    self_attn_cfg=dict(  # MultiScaleDeformableAttention
                        embed_dims=base_channels,
                        num_heads=8,
                        num_levels=3,
                        num_points=4,
                        im2col_step=64,
                        dropout=0.0,
                        batch_first=True,
                        norm_cfg=None,
                        init_cfg=None),
                    ffn_cfg=dict(
                        embed_dims=base_channels,
                        feedforward_channels=base_channels * 4,
                        num_fcs=2,
                        ffn_drop=0.0,
                        act_cfg=dict(type='ReLU', inplace=True))),
                init_cfg=None),
            positional_encoding=dict(
                num_feats=base_channels // 2, normalize=True),
            init_cfg=None,
            upsample_cfg=upsample_cfg))
    self = MODELS.build(pixel_decoder_cfg)
    self.init_weights()
    feats = [
        torch.rand((2, base_channels * 2**i, 4 * 2**(3 - i), 5 * 2**(3 - i)))
        for i in range(4)
    ]
    mask_feature, multi_scale_features = self(feats)

    assert mask_feature.shape == feats[0].shape
    assert len(multi_scale_features) == 3
    multi_scale_features = multi_scale_features[::-1]
    for i in range(3):
        assert multi_scale_features[i].shape[-2:] == feats[i + 1].shape[-2:]


def test_signature_matches_stock():
    same_signature(DySampleMSDeformAttnPixelDecoder, MSDeformAttnPixelDecoder)


# ---------------------------------------------------------------------------
# the default is the stock decoder, bit for bit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('sizes', [EVEN_SIZES, ADE_SIZES[:2] + [(9, 11),
                                                                (5, 6)]])
def test_default_equals_stock(sizes):
    reference = randomize_(stock()).eval()
    ours = decoder().eval()
    assert ours.upsample_modules is None
    ours.load_state_dict(reference.state_dict(), strict=True)
    stock().load_state_dict(ours.state_dict(), strict=True)
    assert count_params(ours) == count_params(reference)
    feats = make_feats(IN_CHANNELS, sizes, batch=1)
    with torch.no_grad():
        outs, expected = flat(ours(feats)), flat(reference(feats))
    assert len(outs) == 4
    for out, ref in zip(outs, expected):
        assert torch.equal(out, ref)


def test_bilinear_step_equals_stock():
    """The learnable path, pinned to the stock forward (the encoder part is
    a copy of mmdet's): an x2 bilinear layer is mmdet's resize to a size
    exactly twice the coarse one."""
    reference = randomize_(stock()).eval()
    ours = decoder('bilinear').eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, EVEN_SIZES, batch=1)
    with torch.no_grad():
        outs, expected = flat(ours(feats)), flat(reference(feats))
    for out, ref in zip(outs, expected):
        assert torch.equal(out, ref)


def test_odd_sizes_are_fitted():
    ours = decoder('DySample').eval()
    with torch.no_grad():
        mask_feature, outs = ours(make_feats(IN_CHANNELS, ADE_SIZES, 1))
    assert mask_feature.shape == (1, FEAT, *ADE_SIZES[0])
    assert [o.shape[2:] for o in outs] == [ADE_SIZES[i] for i in (3, 2, 1)]


# ---------------------------------------------------------------------------
# every upsampler at the R50 model's channels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_trains_at_zoo_channels(name):
    ours = decoder(name, feat=ZOO_FEAT)
    assert len(ours.upsample_modules) == 1
    ours.init_weights()
    # mmcv's deformable attention starts with zero sampling-offset and
    # attention-weight projections, so at init the queries (and the level
    # embedding) get no gradient, by design: they are moved first.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in ours.encoder.layers:
            attn = layer.self_attn
            for proj in (attn.sampling_offsets, attn.attention_weights):
                proj.weight.normal_(std=0.01, generator=gen)
    outs = check_trains(
        ours, lambda m: flat(m(make_feats(IN_CHANNELS, SMALL_ODD, 1))))
    assert outs[0].shape == (1, ZOO_FEAT, *SMALL_ODD[0])


def test_carafe_builds_at_zoo_channels():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    ours = decoder('carafe', feat=ZOO_FEAT)
    layer, = ours.upsample_modules
    assert isinstance(layer, CARAFEPack) and layer.channels == ZOO_FEAT


@pytest.mark.parametrize('name', ['DySample', 'DySample+', 'FADE'])
def test_parameter_delta_is_one_upsampler(name):
    delta = count_params(decoder(name, feat=ZOO_FEAT)) - count_params(
        stock(feat=ZOO_FEAT))
    assert delta == count_params(build_upsampler(name, ZOO_FEAT)) > 0


# ---------------------------------------------------------------------------
# the step reads the map it should, with the guide it should
# ---------------------------------------------------------------------------
def reference_forward(module, xs, up):
    """The decoder's step written out with ``up(layer, x, guide)``."""
    outs = module._encode(xs)
    lateral = module.lateral_convs[0](xs[0])
    y = module.output_convs[0](
        lateral + up(module.upsample_modules[0], outs[-1], lateral))
    return [module.mask_feature(y), *(outs + [y])[:3]]


def test_guided_gradients_equal_float64_reference():
    ours = decoder(dict(type=Probe)).double().eval()
    params = list(ours.parameters())
    names = [n for n, _ in ours.named_parameters()] + [
        f'input {i}' for i in range(4)
    ]
    xs = make_feats(
        IN_CHANNELS, EVEN_SIZES, dtype=torch.float64, grad=True)
    grads = torch.autograd.grad(
        weighted_sum(flat(ours(xs))), params + xs, allow_unused=True)
    expected = reference_forward(ours, xs, lambda m, x, g: m(x, g))
    expected_grads = torch.autograd.grad(
        weighted_sum(expected), params + xs, allow_unused=True)
    for name, grad, ref in zip(names, grads, expected_grads):
        if ref is None:  # parameters the forward does not reach
            assert grad is None, name
            continue
        torch.testing.assert_close(grad, ref, msg=name)
    by_name = dict(zip(names, grads))
    assert by_name['upsample_modules.0.gate.weight'].abs().sum() > 0


def test_the_step_upsamples_the_map_it_should():
    ours = decoder('nearest').eval()
    seen = []
    ours.upsample_modules[0].register_forward_hook(
        lambda m, args, out: seen.append(args[0]))
    xs = make_feats(IN_CHANNELS, EVEN_SIZES)
    expected = []

    def up(layer, x, guide):
        expected.append(x)
        return F.interpolate(x, scale_factor=2)

    with torch.no_grad():
        outs = flat(ours(xs))
        reference = reference_forward(ours, xs, up)
    assert len(seen) == len(expected) == 1
    # the encoder's output at the stride-8 level
    assert seen[0].shape == (2, FEAT, *EVEN_SIZES[1])
    assert torch.equal(seen[0], expected[0])
    assert torch.equal(seen[0], outs[-1])  # the last multi-scale feature
    for out, ref in zip(outs, reference):
        assert torch.equal(out, ref)


# ---------------------------------------------------------------------------
# init, keys, registries, errors
# ---------------------------------------------------------------------------
def test_init_weights_keeps_the_upsamplers_own():
    ours = decoder('DySample+')
    layer, = ours.upsample_modules
    with torch.no_grad():
        layer.offset.weight.fill_(0.5)
        ours.mask_feature.weight.fill_(0.5)
    ours.init_weights()
    assert 0.0005 < layer.offset.weight.std() < 0.0015
    assert not layer.offset.bias.any() and not layer.scope.weight.any()
    assert not (ours.mask_feature.weight == 0.5).all()  # mmdet's init ran


def test_upsamplers_draw_nothing_from_the_global_rng():

    def build(cfg):
        torch.manual_seed(0)
        module = decoder(cfg)
        module.init_weights()
        skip = {
            id(p)
            for m in (module.upsample_modules or []) for p in m.parameters()
        }
        others = {
            n: p.detach().clone()
            for n, p in module.named_parameters() if id(p) not in skip
        }
        return others, torch.rand(3)

    reference, stream = build(None)
    for cfg in ('DySample', 'FADE', 'pixel_shuffle'):
        others, after = build(cfg)
        assert others.keys() == reference.keys()
        for name in reference:
            assert torch.equal(others[name], reference[name]), (cfg, name)
        assert torch.equal(after, stream), cfg


def test_stock_checkpoint_misses_only_the_upsampler():
    ours = decoder('DySample+')
    result = ours.load_state_dict(
        randomize_(stock()).state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {
        f'upsample_modules.0.{leaf}'
        for leaf in ('offset.weight', 'offset.bias', 'scope.weight',
                     'init_pos')
    }


def test_registries_and_drop_in_table():
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = dict(
        type='mmdet.DySampleMSDeformAttnPixelDecoder',
        upsample_cfg=dict(type='DySample', groups=2),
        **decoder_kwargs())
    built = SEG_MODELS.build(ConfigDict(cfg))  # as mmseg's configs name it
    assert type(built) is DySampleMSDeformAttnPixelDecoder
    assert built.upsample_modules[0].groups == 2
    assert "upsample_cfg={'type': 'DySample', 'groups': 2}" in repr(built)
    assert drop_in_hosts()[MSDeformAttnPixelDecoder] is \
        DySampleMSDeformAttnPixelDecoder


def test_wrong_guide_is_a_value_error_naming_host_and_step():
    ours = decoder('FADE')
    # the stride-4 level 3x the stride-8 one: no guide fits the x2 step
    feats = make_feats(IN_CHANNELS, [(45, 45), (15, 15), (8, 8), (4, 4)])
    with pytest.raises(
            ValueError,
            match=r'DySampleMSDeformAttnPixelDecoder stage 0: the guide of '
            r'shape \(2, 32, 45, 45\)'):
        ours(feats)


def test_strides_that_are_no_integer_ratio():
    with pytest.raises(ValueError, match=r'strides=\[4, 6, 16, 32\]'):
        decoder('DySample', strides=[4, 6, 16, 32])
    # the stock path does not upsample by a ratio: it builds
    assert decoder(strides=[4, 6, 16, 32]).upsample_modules is None


@pytest.mark.parametrize('cfg,exc,match', [
    (3, TypeError, 'upsample_cfg'),
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(type='DySample', groups=3), ValueError, 'groups'),
])
def test_bad_upsample_cfg(cfg, exc, match):
    with pytest.raises(exc, match=match):
        decoder(cfg)


def test_dysample_preset():
    assert isinstance(decoder('DySample-S+').upsample_modules[0], DySample)
