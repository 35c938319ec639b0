# Copyright (c) mmdysample contributors. All rights reserved.
"""The per-step mechanism every host shares (``mmdysample/models/steps.py``),
checked in each of the seven hosts.

- Gradients of a guided host equal those of a hand-written float64
  reference of the same host (a ``guide=lateral.detach()`` in a host leaves
  its outputs unchanged and only its gradients wrong: this is the test that
  sees it).
- Step ``i`` upsamples the map it should (a forward hook on each upsampler
  against the reference's step inputs).
- Building and initialising the upsamplers draws nothing from the global
  RNG: two hosts that differ only in ``upsample_cfg``, built and
  initialised under one seed, have equal parameters everywhere else, and
  leave the global stream where the stock host leaves it.
- The upsamplers' own initialisation survives the host's.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

import mmdysample  # noqa: E402,F401 (registers everything)
from host_checks import Probe  # noqa: E402
from mmdysample import DySample  # noqa: E402
from mmdysample.models.decode_heads import (  # noqa: E402
    DySampleDepthwiseSeparableASPPHead, DySampleFPNHead,
    DySampleSegformerHead, DySampleUPerHead)
from mmdysample.models.necks import (  # noqa: E402
    DySampleFPN, DySamplePixelDecoder, DySampleTransformerEncoderPixelDecoder)
from mmdysample.models.steps import isolated_rng  # noqa: E402

C = 32  # every guided layer builds at 32 channels (GroupNorm(32))
IN_CHANNELS = [32, 16, 24, 32]
#: Exactly 2x apart, so the reference needs no padding or cropping.
SIZES = [(16, 24), (8, 12), (4, 6), (2, 3)]
ENCODER = dict(
    num_layers=1,
    layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=C, num_heads=2, batch_first=True),
        ffn_cfg=dict(embed_dims=C, feedforward_channels=64)))


class SameWidthProbe(Probe):
    """A probe that, like FreqFusion, reads a guide only at its own width."""

    def __init__(self, in_channels, scale_factor=2, guide_channels=None):
        if guide_channels not in (None, in_channels):
            raise ValueError(f'guide_channels={guide_channels} must equal '
                             f'in_channels={in_channels}')
        super().__init__(in_channels, scale_factor, guide_channels)


def feats(dtype=torch.float32, grad=False):
    gen = torch.Generator().manual_seed(0)
    return [
        torch.rand(2, c, h, w, generator=gen).to(dtype).requires_grad_(grad)
        for c, (h, w) in zip(IN_CHANNELS, SIZES)
    ]


def metas():
    h, w = SIZES[0][0] * 4, SIZES[0][1] * 4
    return [dict(batch_input_shape=(h, w), img_shape=(h, w))] * 2


def bilinear(x, size):
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


# ---- the hand-written references: ``up(layer, x, guide)`` is a step --------
def fpn_reference(neck, xs, up):
    lat = [conv(x) for conv, x in zip(neck.lateral_convs, xs)]
    for i in (3, 2, 1):
        lat[i - 1] = lat[i - 1] + up(neck.upsample_modules[i - 1], lat[i],
                                     lat[i - 1])
    return [conv(x) for conv, x in zip(neck.fpn_convs, lat)]


def segformer_reference(head, xs, up):
    embeds = [conv(x) for conv, x in zip(head.convs, xs)]
    outs = []
    for level, x in enumerate(embeds):
        for stage, layer in enumerate(head.upsamplers[level]):
            x = up(layer, x, embeds[level - stage - 1])
        outs.append(x)
    return [head.cls_seg(head.fusion_conv(torch.cat(outs, 1)))]


def decoder_top_down(decoder, y, xs, up):
    for i in (2, 1, 0):
        lateral = decoder.lateral_convs[i](xs[i])
        y = decoder.output_convs[i](
            lateral + up(decoder.upsample_modules[i], y, lateral))
    return decoder.mask_feature(y)


def pixel_decoder_reference(decoder, xs, up):
    return [decoder_top_down(decoder, decoder.last_feat_conv(xs[-1]), xs, up)]


def encoder_decoder_reference(decoder, xs, up):
    memory = decoder._encode(xs[-1], metas())
    y = decoder.encoder_out_proj(memory)
    return [decoder_top_down(decoder, y, xs, up), memory]


def uper_reference(head, xs, up):
    lat = [conv(x) for conv, x in zip(head.lateral_convs, xs)]
    lat.append(head.psp_forward(xs))
    for i in (3, 2, 1):
        lat[i - 1] = lat[i - 1] + up(head.upsample_modules[i - 1], lat[i],
                                     lat[i - 1])
    outs = [head.fpn_convs[i](lat[i]) for i in range(3)] + [lat[3]]
    outs = [outs[0]] + [bilinear(o, SIZES[0]) for o in outs[1:]]
    return [head.cls_seg(head.fpn_bottleneck(torch.cat(outs, 1)))]


def aspp_reference(head, xs, up):
    x = xs[1]
    pooled = bilinear(head.image_pool(x), x.shape[2:])
    aspp = head.bottleneck(torch.cat([pooled, *head.aspp_modules(x)], 1))
    # a guided step reads the c1 input (brought to the head's width for an
    # upsampler that cannot read it otherwise)
    guide = xs[0]
    if head.upsample_guide is not None:
        guide = head.upsample_guide(guide)
    out = up(head.upsample_modules[0], aspp, guide)
    out = torch.cat([out, head.c1_bottleneck(xs[0])], 1)
    return [head.cls_seg(head.sep_bottleneck(out))]


def fpn_head_reference(head, xs, up):
    # each level after the first conv of its branch guides the steps
    # that land on its resolution
    embeds = [scale_head[0](x) for scale_head, x in zip(head.scale_heads, xs)]
    out = embeds[0]
    for i in (1, 2, 3):
        y = embeds[i]
        for k in range(i):
            if k:
                y = head.scale_heads[i][2 * k](y)
            y = up(head.scale_heads[i][2 * k + 1], y, embeds[i - k - 1])
        out = out + y
    return [head.cls_seg(out)]


def as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


class Host:

    def __init__(self, build, run, reference, stock=None):
        self.build, self.run, self.reference = build, run, reference
        self.stock = stock  # the stock host's upsample_cfg


HEAD = dict(num_classes=3, norm_cfg=dict(type='BN'), dropout_ratio=0)
HOSTS = {
    'DySampleFPN':
    Host(lambda cfg: DySampleFPN(IN_CHANNELS, C, 4, upsample_cfg=cfg),
         lambda m, xs: as_list(m(xs)), fpn_reference, dict(mode='nearest')),
    'DySampleSegformerHead':
    Host(
        lambda cfg: DySampleSegformerHead(
            in_channels=IN_CHANNELS, in_index=[0, 1, 2, 3], channels=C,
            upsample_cfg=cfg, **HEAD), lambda m, xs: [m(xs)],
        segformer_reference),
    'DySamplePixelDecoder':
    Host(
        lambda cfg: DySamplePixelDecoder(
            IN_CHANNELS, C, 16, norm_cfg=dict(type='GN', num_groups=8),
            upsample_cfg=cfg), lambda m, xs: [m(xs, metas())[0]],
        pixel_decoder_reference),
    'DySampleTransformerEncoderPixelDecoder':
    Host(
        lambda cfg: DySampleTransformerEncoderPixelDecoder(
            IN_CHANNELS, C, 16, norm_cfg=dict(type='GN', num_groups=8),
            encoder=ENCODER,
            positional_encoding=dict(num_feats=C // 2, normalize=True),
            upsample_cfg=cfg), lambda m, xs: list(m(xs, metas())),
        encoder_decoder_reference),
    'DySampleUPerHead':
    Host(
        lambda cfg: DySampleUPerHead(
            in_channels=IN_CHANNELS, in_index=[0, 1, 2, 3], channels=C,
            pool_scales=(1, 2), upsample_cfg=cfg, **HEAD),
        lambda m, xs: [m(xs)], uper_reference),
    'DySampleDepthwiseSeparableASPPHead':
    Host(
        lambda cfg: DySampleDepthwiseSeparableASPPHead(
            c1_in_channels=IN_CHANNELS[0], c1_channels=8,
            in_channels=IN_CHANNELS[1], in_index=1, channels=C,
            dilations=(1, 2), upsample_cfg=cfg, **HEAD),
        lambda m, xs: [m(xs)], aspp_reference),
    'DySampleFPNHead':
    Host(
        lambda cfg: DySampleFPNHead(
            feature_strides=[4, 8, 16, 32], in_channels=IN_CHANNELS,
            in_index=[0, 1, 2, 3], channels=C, upsample_cfg=cfg, **HEAD),
        lambda m, xs: [m(xs)], fpn_head_reference),
}


def upsampler_params(module):
    return {id(p) for layer in module.upsample_layers()
            for p in layer.parameters()}


def weighted_sum(outs):
    gen = torch.Generator().manual_seed(1)
    return sum((o * torch.randn(o.shape, generator=gen).to(o)).sum()
               for o in outs)


@pytest.mark.parametrize('host,probe', [(host, Probe) for host in HOSTS] + [
    ('DySampleDepthwiseSeparableASPPHead', SameWidthProbe)
])
def test_guided_gradients_equal_float64_reference(host, probe):
    spec = HOSTS[host]
    module = spec.build(dict(type=probe)).double().eval()
    params = [p for p in module.parameters() if p.requires_grad]
    xs = feats(torch.float64, grad=True)
    outs = spec.run(module, xs)
    grads = torch.autograd.grad(
        weighted_sum(outs), params + xs, allow_unused=True)

    def up(layer, x, guide):
        return layer(x, guide)

    expected = spec.reference(module, xs, up)
    expected_grads = torch.autograd.grad(
        weighted_sum(expected), params + xs, allow_unused=True)
    assert len(outs) == len(expected)
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    names += [f'input {i}' for i in range(len(xs))]
    for name, grad, ref in zip(names, grads, expected_grads):
        if ref is None:  # an input level the host does not read
            assert grad is None and name.startswith('input'), name
            continue
        torch.testing.assert_close(grad, ref, msg=f'{host}: {name}')
    # every upsampler's guide path is in use
    ids = {id(p) for p in params}
    probes = [m for m in module.upsample_layers() if isinstance(m, Probe)]
    assert probes and all(id(m.gate.weight) in ids for m in probes)


@pytest.mark.parametrize('host', list(HOSTS))
def test_each_step_upsamples_the_map_it_should(host):
    spec = HOSTS[host]
    module = spec.build('nearest').eval()
    layers = module.upsample_layers()
    seen = {}

    def record(k):

        def hook(module, args, out):
            seen[k] = args[0]

        return hook

    handles = [
        layer.register_forward_hook(record(k))
        for k, layer in enumerate(layers)
    ]
    xs = feats()
    with torch.no_grad():
        spec.run(module, xs)
    for handle in handles:
        handle.remove()
    expected = {}

    def up(layer, x, guide):
        expected[next(k for k, m in enumerate(layers) if m is layer)] = x
        return layer(x)

    with torch.no_grad():
        spec.reference(module, xs, up)
    assert len(layers) > 0 and sorted(seen) == sorted(expected) == list(
        range(len(layers)))
    for k in expected:
        assert torch.equal(seen[k], expected[k]), (host, k)


def build_and_init(spec, cfg):
    torch.manual_seed(0)
    module = spec.build(cfg)
    module.init_weights()
    skip = upsampler_params(module)
    others = {
        name: p.detach().clone()
        for name, p in module.named_parameters() if id(p) not in skip
    }
    return others, torch.rand(4)


@pytest.mark.parametrize('host', list(HOSTS))
def test_upsamplers_draw_nothing_from_the_global_rng(host):
    spec = HOSTS[host]
    stock, stream = build_and_init(spec, spec.stock)
    for cfg in ('nearest', 'DySample', 'FADE', 'pixel_shuffle'):
        others, after = build_and_init(spec, cfg)
        assert others.keys() == stock.keys(), cfg
        for name in stock:
            assert torch.equal(others[name], stock[name]), (cfg, name)
        assert torch.equal(after, stream), cfg


@pytest.mark.parametrize('host', list(HOSTS))
def test_upsamplers_keep_their_own_init(host):
    spec = HOSTS[host]
    module = spec.build('DySample+')
    layers = module.upsample_layers()
    with torch.no_grad():  # spoil them, as the host's init or training would
        for layer in layers:
            for p in layer.parameters():
                p.fill_(0.5)
    module.init_weights()
    assert layers and all(isinstance(m, DySample) for m in layers)
    for layer in layers:
        assert 0.0005 < layer.offset.weight.std().item() < 0.0015
        assert not layer.offset.bias.any() and not layer.scope.weight.any()


@pytest.mark.parametrize('host', list(HOSTS))
def test_init_cfg_does_not_reach_the_upsamplers(host):
    """An init_cfg on every Conv2d initialises the host's convolutions and
    none of the upsamplers' (which keep what their own init gave them)."""
    spec = HOSTS[host]
    module = spec.build('pixel_shuffle')
    module.init_cfg = dict(type='Constant', layer='Conv2d', val=0.25, bias=0)
    with torch.no_grad():
        for layer in module.upsample_layers():
            layer.upsample_conv.bias.fill_(1.)
    module.init_weights()
    for layer in module.upsample_layers():
        assert not layer.upsample_conv.bias.any()  # its own init: zero
        assert not (layer.upsample_conv.weight == 0.25).all()


def test_pretrained_init_cfg_is_applied_last(tmp_path):
    spec = HOSTS['DySampleUPerHead']
    trained = spec.build('DySample-S+')
    with torch.no_grad():
        for p in trained.parameters():
            p.uniform_()
    path = str(tmp_path / 'head.pth')
    torch.save(trained.state_dict(), path)
    module = spec.build('DySample-S+')
    module.init_cfg = [
        dict(type='Constant', layer='Conv2d', val=0.25),
        dict(type='Pretrained', checkpoint=path)
    ]
    module.init_weights()
    for key, value in trained.state_dict().items():
        assert torch.equal(module.state_dict()[key], value), key


def test_init_bookkeeping_of_a_whole_model():
    """mmengine's ``_params_init_info`` (the top-level module's record of
    who initialised each parameter) still works with hidden upsamplers: a
    segmentor initialises, and the record is gone afterwards."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfgs = {}
    for cfg in (None, 'DySample', 'FADE'):
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(segmentor(cfg))
        model.init_weights()
        assert not any(
            hasattr(m, '_params_init_info') for m in model.modules())
        skip = upsampler_params(model.decode_head)
        cfgs[cfg] = {
            n: p.detach().clone()
            for n, p in model.named_parameters() if id(p) not in skip
        }
    stock = cfgs.pop(None)
    for cfg, params in cfgs.items():
        assert params.keys() == stock.keys()
        for name in stock:  # the auxiliary head too
            assert torch.equal(params[name], stock[name]), (cfg, name)


def segmentor(upsample_cfg):
    return dict(
        type='EncoderDecoder',
        backbone=dict(
            type='MixVisionTransformer', embed_dims=8,
            num_heads=[1, 1, 1, 1], num_layers=[1, 1, 1, 1]),
        decode_head=dict(
            type='DySampleUPerHead', in_channels=[8, 16, 40, 64],
            in_index=[0, 1, 2, 3], channels=C, pool_scales=(1, 2),
            upsample_cfg=upsample_cfg, **HEAD),
        auxiliary_head=dict(
            type='FCNHead', in_channels=40, in_index=2, channels=8,
            num_convs=1, num_classes=3))


def test_isolated_rng_restores_the_stream():
    torch.manual_seed(3)
    with isolated_rng():
        inside = torch.rand(2)
    after = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(inside, torch.rand(2))
    assert torch.equal(after, inside)


def test_hosts_copy_cleanly():
    """Hidden-and-restored slots leave a module that deep-copies and
    round-trips its state dict."""
    module = HOSTS['DySampleFPNHead'].build('DySample')
    module.init_weights()
    clone = copy.deepcopy(module)
    clone.load_state_dict(module.state_dict(), strict=True)
    assert [type(m) for m in clone.upsample_layers()] == [DySample] * 6


def test_steps_of_one_shape_start_from_different_draws():
    """All of a host's upsamplers are initialised in one isolated block:
    the three DySample steps of an FPN (one shape) get different initial
    offsets, not three copies of the same draws."""
    module = HOSTS['DySampleFPNHead'].build('DySample')
    module.init_weights()
    offsets = [m.offset.weight for m in module.upsample_layers()]
    assert len(offsets) == 6
    for i, a in enumerate(offsets):
        for b in offsets[i + 1:]:
            if a.shape == b.shape:
                assert not torch.equal(a, b)
