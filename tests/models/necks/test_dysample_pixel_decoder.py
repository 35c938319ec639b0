# Copyright (c) mmdysample contributors. All rights reserved.
"""DySamplePixelDecoder (and its transformer-encoder sibling) against mmdet's
MaskFormer pixel decoders: the same contract as DySampleFPN."""
import inspect

import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')

from mmdet.models.layers import PixelDecoder  # noqa: E402
from mmdet.models.layers import TransformerEncoderPixelDecoder  # noqa: E402

import mmdysample.models.necks  # noqa: E402,F401 (registers the decoders)
from mmdysample import DYSAMPLE_PRESETS, DySample  # noqa: E402
from mmdysample.models.necks import (  # noqa: E402
    DySamplePixelDecoder, DySampleTransformerEncoderPixelDecoder)

IN_CHANNELS = [8, 16, 32, 64]
FEAT = 32  # divisible by every preset's groups, by s**2 and by GN's groups
OUT = 16
NORM = dict(type='GN', num_groups=8)
EVEN_SIZES = [(32, 48), (16, 24), (8, 12), (4, 6)]
ODD_SIZES = [(37, 45), (19, 23), (10, 12), (5, 6)]
MMCV_UPSAMPLERS = ['nearest', 'bilinear', 'deconv', 'pixel_shuffle']
#: Parameters of one x2 upsampler at 256 channels (the paper's decoder).
PARAMS_AT_256 = {
    'DySample-S+': 2064,
    'DySample': 8224,
    'deconv': 256 * 256 * 9 + 256,
    'pixel_shuffle': 256 * 1024 * 9 + 1024,
    'carafe': (256 * 64 + 64) + (64 * 100 * 9 + 100),
}
ENCODER = dict(
    num_layers=1,
    layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=FEAT, num_heads=2, batch_first=True),
        ffn_cfg=dict(embed_dims=FEAT, feedforward_channels=64)))
POS = dict(num_feats=FEAT // 2, normalize=True)


def make_inputs(sizes, batch=2, grad=False):
    gen = torch.Generator().manual_seed(0)
    return [
        torch.rand(batch, c, h, w, generator=gen).requires_grad_(grad)
        for c, (h, w) in zip(IN_CHANNELS, sizes)
    ]


def metas(sizes, batch=2):
    # input 4x the finest level; the second image padded by 8 pixels
    h, w = sizes[0][0] * 4, sizes[0][1] * 4
    return [
        dict(batch_input_shape=(h, w), img_shape=(h - 8 * i, w - 8 * i))
        for i in range(batch)
    ]


def shuffled_(module):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return module


def plain(upsample_cfg=None, **kwargs):
    return DySamplePixelDecoder(
        IN_CHANNELS, FEAT, OUT, norm_cfg=NORM, upsample_cfg=upsample_cfg,
        **kwargs)


def with_encoder(upsample_cfg=None):
    return DySampleTransformerEncoderPixelDecoder(
        IN_CHANNELS, FEAT, OUT, norm_cfg=NORM, encoder=ENCODER,
        positional_encoding=POS, upsample_cfg=upsample_cfg)


#: ours -> (stock class, constructor of ours, extra stock kwargs)
PAIRS = {
    'plain': (PixelDecoder, plain, {}),
    'encoder': (TransformerEncoderPixelDecoder, with_encoder,
                dict(encoder=ENCODER, positional_encoding=POS)),
}


def stock(kind):
    cls, _, extra = PAIRS[kind]
    return cls(IN_CHANNELS, FEAT, OUT, norm_cfg=NORM, **extra)


@pytest.mark.parametrize('ours,theirs', [
    (DySamplePixelDecoder, PixelDecoder),
    (DySampleTransformerEncoderPixelDecoder, TransformerEncoderPixelDecoder),
])
def test_signature_is_the_stock_one_plus_upsample_cfg(ours, theirs):
    mine = dict(inspect.signature(ours.__init__).parameters)
    upsample_cfg = mine.pop('upsample_cfg')
    assert upsample_cfg.default is None
    stock_params = inspect.signature(theirs.__init__).parameters
    assert list(mine) == list(stock_params)
    for name, param in stock_params.items():
        assert mine[name].default == param.default, name


# --------------------------------------------------------------------------
# upsample_cfg=None: the stock decoder
# --------------------------------------------------------------------------
@pytest.mark.parametrize('sizes', [EVEN_SIZES, ODD_SIZES])
@pytest.mark.parametrize('kind', sorted(PAIRS))
def test_default_equals_stock_decoder(kind, sizes):
    reference = shuffled_(stock(kind)).eval()
    decoder = PAIRS[kind][1]().eval()
    assert decoder.upsample_modules is None
    assert set(decoder.state_dict()) == set(reference.state_dict())
    decoder.load_state_dict(reference.state_dict(), strict=True)
    inputs = make_inputs(sizes)
    outs, ref = decoder(inputs, metas(sizes)), reference(inputs, metas(sizes))
    assert len(outs) == len(ref) == 2
    for out, expected in zip(outs, ref):
        assert torch.equal(out, expected)


@pytest.mark.parametrize('sizes', [EVEN_SIZES, ODD_SIZES])
@pytest.mark.parametrize('kind', sorted(PAIRS))
def test_learnable_path_with_nearest_layer_equals_stock(kind, sizes):
    # 2x nn.Upsample + the crop of fit_to_size picks the pixels of mmdet's
    # F.interpolate(size=...): this pins our top-down forward to mmdet's.
    reference = shuffled_(stock(kind)).eval()
    decoder = PAIRS[kind][1]('nearest').eval()
    assert len(decoder.upsample_modules) == 3
    decoder.load_state_dict(reference.state_dict(), strict=True)
    inputs = make_inputs(sizes)
    outs, ref = decoder(inputs, metas(sizes)), reference(inputs, metas(sizes))
    for out, expected in zip(outs, ref):
        assert torch.equal(out, expected)


@pytest.mark.parametrize('kind', list(PAIRS))
def test_each_stage_upsamples_its_own_level(kind):
    # Stage i's upsampler must receive the path at level i + 1 (odd sizes:
    # every level has its own size) and nothing else.
    decoder = PAIRS[kind][1]('DySample-S+').eval()
    seen = {}
    for i, layer in enumerate(decoder.upsample_modules):
        layer.register_forward_pre_hook(
            lambda m, args, i=i: seen.setdefault(i, []).append(
                tuple(args[0].shape[-2:])))
    decoder(make_inputs(ODD_SIZES), metas(ODD_SIZES))
    assert seen == {i: [ODD_SIZES[i + 1]] for i in range(3)}


@pytest.mark.parametrize('kind', list(PAIRS))
def test_top_down_matches_a_hand_written_loop(kind):
    # Distinct random weights per stage: applying the stages' upsamplers in
    # another order changes the output.
    decoder = shuffled_(PAIRS[kind][1]('deconv')).eval()
    weights = [m.weight for m in decoder.upsample_modules]
    assert not torch.equal(weights[0], weights[1])
    inputs = make_inputs(ODD_SIZES)
    mask_feature, _ = decoder(inputs, metas(ODD_SIZES))
    with torch.no_grad():
        if kind == 'plain':
            y = decoder.last_feat_conv(inputs[-1])
        else:
            memory = decoder._encode(inputs[-1], metas(ODD_SIZES))
            y = decoder.encoder_out_proj(memory)
        for i in (2, 1, 0):
            lateral = decoder.lateral_convs[i](inputs[i])
            up = decoder.upsample_modules[i](y)
            h, w = lateral.shape[-2:]
            y = decoder.output_convs[i](lateral + up[..., :h, :w])
        expected = decoder.mask_feature(y)
    torch.testing.assert_close(mask_feature, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------
# learnable upsamplers
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(DYSAMPLE_PRESETS) + MMCV_UPSAMPLERS)
def test_every_registered_upsampler(name):
    decoder = plain(name)
    assert isinstance(decoder.upsample_modules, nn.ModuleList)
    assert len(decoder.upsample_modules) == 3
    assert len({id(m) for m in decoder.upsample_modules}) == 3
    if name in DYSAMPLE_PRESETS:
        assert all(isinstance(m, DySample) for m in decoder.upsample_modules)
    for sizes, batch in [(EVEN_SIZES, 2), (ODD_SIZES, 2), (ODD_SIZES, 1)]:
        inputs = make_inputs(sizes, batch=batch, grad=True)
        mask_feature, memory = decoder(inputs, metas(sizes, batch))
        assert mask_feature.shape == (batch, OUT, *sizes[0])
        assert memory is inputs[-1]
    gen = torch.Generator().manual_seed(2)
    (mask_feature * torch.randn(mask_feature.shape, generator=gen)).sum(
    ).backward()
    # the coarsest level reaches the mask features through all three stages
    assert inputs[-1].grad is not None and inputs[-1].grad.abs().sum() > 0
    for pname, param in decoder.named_parameters():
        assert param.grad is not None, pname
        assert param.grad.abs().sum() > 0, pname
    num_params = sum(p.numel() for p in decoder.upsample_modules.parameters())
    assert (num_params > 0) == (name not in ('nearest', 'bilinear'))


def test_encoder_decoder_with_dysample_trains():
    decoder = with_encoder('DySample-S+')
    inputs = make_inputs(ODD_SIZES, grad=True)
    mask_feature, memory = decoder(inputs, metas(ODD_SIZES))
    assert mask_feature.shape == (2, OUT, *ODD_SIZES[0])
    assert memory.shape == (2, FEAT, *ODD_SIZES[-1])
    gen = torch.Generator().manual_seed(2)
    (mask_feature * torch.randn(mask_feature.shape, generator=gen)).sum(
    ).backward()
    for pname, param in decoder.upsample_modules.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


def test_carafe_builds_and_refuses_cpu_forward():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    decoder = plain('carafe')
    assert all(isinstance(m, CARAFEPack) for m in decoder.upsample_modules)
    assert all(m.channels == FEAT and m.scale_factor == 2
               for m in decoder.upsample_modules)
    with pytest.raises(NotImplementedError, match='no CPU kernel'):
        decoder(make_inputs(EVEN_SIZES), metas(EVEN_SIZES))


@pytest.mark.gpu
def test_carafe_forward_cuda():
    decoder = plain('carafe').cuda()
    inputs = [x.cuda() for x in make_inputs(ODD_SIZES, grad=True)]
    mask_feature, _ = decoder(inputs, metas(ODD_SIZES))
    assert mask_feature.shape == (2, OUT, *ODD_SIZES[0])
    mask_feature.sum().backward()
    for pname, param in decoder.upsample_modules.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize('name', sorted(PARAMS_AT_256))
def test_parameter_delta_at_256_channels(name):
    if name == 'carafe':
        pytest.importorskip('mmcv.ops')
    in_channels = [256, 512, 1024, 2048]

    def count(module):
        return sum(p.numel() for p in module.parameters())

    ours = DySamplePixelDecoder(in_channels, 256, 256, upsample_cfg=name)
    delta = count(ours) - count(PixelDecoder(in_channels, 256, 256))
    assert delta == 3 * PARAMS_AT_256[name]
    assert count(ours.upsample_modules) == delta


# --------------------------------------------------------------------------
# state dicts and initialisation
# --------------------------------------------------------------------------
@pytest.mark.parametrize('kind', sorted(PAIRS))
def test_keys_and_stock_checkpoint(kind):
    reference = shuffled_(stock(kind))
    decoder = PAIRS[kind][1]('DySample+')
    leaves = ['offset.weight', 'offset.bias', 'init_pos', 'scope.weight']
    expected_up = {f'upsample_modules.{i}.{leaf}'
                   for i in range(3) for leaf in leaves}
    stock_keys = set(reference.state_dict())
    assert 'lateral_convs.0.conv.weight' in stock_keys
    assert 'mask_feature.weight' in stock_keys
    assert set(decoder.state_dict()) == stock_keys | expected_up
    result = decoder.load_state_dict(reference.state_dict(), strict=False)
    assert set(result.missing_keys) == expected_up
    assert result.unexpected_keys == []
    for key, value in reference.state_dict().items():
        assert torch.equal(decoder.state_dict()[key], value), key


@pytest.mark.parametrize('kind', sorted(PAIRS))
@pytest.mark.parametrize('name', ['DySample+', 'DySample-S'])
def test_init_weights_keeps_dysample_init(kind, name):
    decoder = PAIRS[kind][1](name)
    with torch.no_grad():  # spoil everything, as training would
        for param in decoder.parameters():
            param.normal_(0, 0.5)
    decoder.init_weights()
    for layer in decoder.upsample_modules:
        assert 0 < layer.offset.weight.std() < 0.002
        assert torch.equal(layer.offset.bias,
                           torch.zeros_like(layer.offset.bias))
        if layer.dyscope:
            assert torch.equal(layer.scope.weight,
                               torch.zeros_like(layer.scope.weight))
    # mmdet's own init (caffe2 Xavier, zero bias) did run on its convs
    assert torch.equal(decoder.mask_feature.bias,
                       torch.zeros_like(decoder.mask_feature.bias))
    assert decoder.mask_feature.weight.std() < 0.3


def test_init_weights_reapplies_pixel_shuffle_init():
    decoder = plain('pixel_shuffle')
    for layer in decoder.upsample_modules:
        nn.init.constant_(layer.upsample_conv.bias, 1.0)
    decoder.init_weights()
    for layer in decoder.upsample_modules:
        bias = layer.upsample_conv.bias
        assert torch.equal(bias, torch.zeros_like(bias))


# --------------------------------------------------------------------------
# registries and errors
# --------------------------------------------------------------------------
@pytest.mark.parametrize('scope,type_name', [
    ('mmdet', 'DySamplePixelDecoder'),
    ('mmseg', 'DySamplePixelDecoder'),
    ('mmseg', 'mmdet.DySamplePixelDecoder'),
    ('mmseg', 'DySampleTransformerEncoderPixelDecoder'),
])
def test_built_by_name_from_host_scopes(scope, type_name):
    if scope == 'mmseg':
        pytest.importorskip('mmseg')
        import mmseg.models  # noqa: F401 (mmseg's registry and scope)
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    cfg = dict(type=type_name, in_channels=IN_CHANNELS, feat_channels=FEAT,
               out_channels=OUT, norm_cfg=NORM, upsample_cfg='DySample')
    if 'Transformer' in type_name:
        cfg.update(encoder=ENCODER, positional_encoding=POS)
    # mmdet's MaskFormerHead builds its pixel decoder with mmdet's MODELS
    # in the config's default scope
    with DefaultScope.overwrite_default_scope(scope):
        decoder = MODELS.build(cfg)
    assert type(decoder).__name__ == type_name.split('.')[-1]
    assert len(decoder.upsample_modules) == 3


@pytest.mark.parametrize('cfg,exc,match', [
    (3, TypeError, 'upsample_cfg'),
    (['DySample'], TypeError, 'upsample_cfg'),
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(mode='nearest'), KeyError, 'type'),
    (dict(type='DySample', groups=3), ValueError, 'groups'),
])
def test_bad_upsample_cfg_raises(cfg, exc, match):
    with pytest.raises(exc, match=match):
        plain(cfg)


def test_wrong_number_of_inputs_raises():
    with pytest.raises(ValueError, match='4 input levels'):
        plain('DySample')(make_inputs(EVEN_SIZES)[:3], metas(EVEN_SIZES))
