# Copyright (c) mmdysample contributors. All rights reserved.
import inspect
import math
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

pytest.importorskip('mmdet')

from mmdet.models.necks import FPN  # noqa: E402

import mmdysample.models.necks  # noqa: E402,F401 (registers DySampleFPN)
from mmdysample import DYSAMPLE_PRESETS, DySample  # noqa: E402
from mmdysample.models.necks import DySampleFPN, fit_to_size  # noqa: E402

IN_CHANNELS = [8, 16, 32, 64]
OUT_CHANNELS = 16  # divisible by every preset's groups (and s**2 for 'pl')
#: A 32x48 image pyramid, and one of 37x45 halved with ceil at every level.
EVEN_SIZES = [(32, 48), (16, 24), (8, 12), (4, 6)]
ODD_SIZES = [(37, 45), (19, 23), (10, 12), (5, 6)]
#: mmcv's upsamplers with a CPU kernel; CARAFE is tested separately.
MMCV_UPSAMPLERS = ['nearest', 'bilinear', 'deconv', 'pixel_shuffle']
#: Parameters of one upsampler at 256 channels, 2x (paper Table 6 setting).
PARAMS_AT_256 = {
    'DySample': 8224,
    'DySample+': 16416,
    'DySample-S': 1040,
    'DySample-S+': 2064,
}


def make_inputs(sizes, batch=2, in_channels=IN_CHANNELS, grad=False):
    gen = torch.Generator().manual_seed(0)
    return [
        torch.rand(batch, c, h, w, generator=gen).requires_grad_(grad)
        for c, (h, w) in zip(in_channels, sizes)
    ]


def shuffled_(module):
    """Give every parameter and buffer random values (seeded)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return module


def upsampler_keys(neck):
    return {k for k in neck.state_dict() if k.startswith('upsample_modules.')}


def authors_init_pos(scale, groups):
    """``DySample._init_pos`` of the authors' code, written out again."""
    h = torch.arange((-scale + 1) / 2, (scale - 1) / 2 + 1) / scale
    return torch.stack(torch.meshgrid([h, h], indexing='ij')).transpose(
        1, 2).repeat(1, groups, 1).reshape(1, -1, 1, 1)


def test_signature_matches_fpn():
    ours = inspect.signature(DySampleFPN.__init__).parameters
    stock = inspect.signature(FPN.__init__).parameters
    assert list(ours) == list(stock)
    for name, param in stock.items():
        assert ours[name].default == param.default, name


# --------------------------------------------------------------------------
# mmdet-style upsample_cfg: the stock FPN, bit for bit
# --------------------------------------------------------------------------
@pytest.mark.parametrize('upsample_cfg,sizes', [
    (None, EVEN_SIZES),
    (None, ODD_SIZES),
    (dict(mode='bilinear', align_corners=False), EVEN_SIZES),
    (dict(mode='bilinear', align_corners=False), ODD_SIZES),
    # mmdet's scale_factor branch only works for exact 2x pyramids
    (dict(scale_factor=2), EVEN_SIZES),
    (dict(scale_factor=2, mode='bilinear'), EVEN_SIZES),
])
def test_mmdet_style_cfg_equals_stock_fpn(upsample_cfg, sizes):
    kwargs = dict(add_extra_convs='on_output', num_outs=5)
    if upsample_cfg is not None:
        kwargs['upsample_cfg'] = upsample_cfg
    stock = shuffled_(FPN(IN_CHANNELS, OUT_CHANNELS, **kwargs))
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, **kwargs)
    assert neck.upsample_modules is None
    assert neck.upsample_cfg == stock.upsample_cfg
    neck.load_state_dict(stock.state_dict(), strict=True)
    inputs = make_inputs(sizes)
    outs, ref = neck(inputs), stock(inputs)
    assert len(outs) == len(ref) == 5
    for out, expected in zip(outs, ref):
        assert torch.equal(out, expected)


@pytest.mark.parametrize('sizes', [EVEN_SIZES, ODD_SIZES])
@pytest.mark.parametrize('kwargs', [
    dict(num_outs=5),
    dict(num_outs=5, add_extra_convs='on_input'),
    dict(num_outs=5, add_extra_convs='on_lateral'),
    dict(num_outs=6, add_extra_convs='on_output',
         relu_before_extra_convs=True),
    dict(num_outs=4, start_level=1, add_extra_convs=True),
    dict(num_outs=3, end_level=2),
])
def test_learnable_path_with_nearest_layer_equals_stock_fpn(kwargs, sizes):
    # A 2x nn.Upsample followed by the crop of fit_to_size picks the same
    # pixels as mmdet's F.interpolate(size=...), so this pins the learnable
    # forward (top-down, output and extra levels) to mmdet's.
    stock = shuffled_(FPN(IN_CHANNELS, OUT_CHANNELS, **kwargs))
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, upsample_cfg='nearest',
                       **kwargs)
    assert len(neck.upsample_modules) == len(neck.lateral_convs) - 1
    neck.load_state_dict(stock.state_dict(), strict=True)
    inputs = make_inputs(sizes)
    outs, ref = neck(inputs), stock(inputs)
    assert len(outs) == len(ref) == kwargs['num_outs']
    for out, expected in zip(outs, ref):
        assert torch.equal(out, expected)


# --------------------------------------------------------------------------
# learnable upsamplers
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(DYSAMPLE_PRESETS) + MMCV_UPSAMPLERS)
def test_every_registered_upsampler(name):
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, num_outs=5,
                       upsample_cfg=name)
    assert isinstance(neck.upsample_modules, nn.ModuleList)
    assert len(neck.upsample_modules) == 3
    assert len({id(m) for m in neck.upsample_modules}) == 3  # not shared
    if name in DYSAMPLE_PRESETS:
        assert all(isinstance(m, DySample) for m in neck.upsample_modules)

    for sizes, batch in [(EVEN_SIZES, 2), (ODD_SIZES, 2), (ODD_SIZES, 1)]:
        inputs = make_inputs(sizes, batch=batch, grad=True)
        outs = neck(inputs)
        expected = [(batch, OUT_CHANNELS, h, w) for h, w in sizes]
        expected.append((batch, OUT_CHANNELS, math.ceil(sizes[-1][0] / 2),
                         math.ceil(sizes[-1][1] / 2)))
        assert [tuple(o.shape) for o in outs] == expected

    # Backward on the last (odd, batch 1) run: the weights make the loss
    # depend on every position, so no gradient cancels by symmetry.
    gen = torch.Generator().manual_seed(2)
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs)
    loss.backward()
    # The coarsest level reaches the finest output only through all three
    # upsamplers.
    assert inputs[-1].grad is not None and inputs[-1].grad.abs().sum() > 0
    for pname, param in neck.upsample_modules.named_parameters():
        assert param.grad is not None, pname
        assert param.grad.abs().sum() > 0, pname
    num_params = sum(p.numel() for p in neck.upsample_modules.parameters())
    assert (num_params > 0) == (name not in ('nearest', 'bilinear'))


def test_carafe_builds():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg='carafe')
    assert len(neck.upsample_modules) == 3
    for layer in neck.upsample_modules:
        assert isinstance(layer, CARAFEPack)
        assert (layer.channels, layer.scale_factor) == (OUT_CHANNELS, 2)


@pytest.mark.gpu
def test_carafe_forward_cuda():
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5,
                       upsample_cfg='carafe').cuda()
    inputs = [x.cuda() for x in make_inputs(ODD_SIZES, grad=True)]
    outs = neck(inputs)
    assert [tuple(o.shape[2:]) for o in outs] == ODD_SIZES + [(3, 3)]
    sum(o.sum() for o in outs).backward()
    for pname, param in neck.upsample_modules.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize('name', list(PARAMS_AT_256))
def test_parameter_delta_at_256_channels(name):
    in_channels = [256, 512, 1024, 2048]

    def count(module):
        return sum(p.numel() for p in module.parameters())

    neck = DySampleFPN(in_channels, 256, 5, upsample_cfg=name)
    delta = count(neck) - count(FPN(in_channels, 256, 5))
    assert delta == 3 * PARAMS_AT_256[name]
    assert count(neck.upsample_modules) == delta


def test_fit_to_size():
    x = torch.rand(2, 3, 8, 10)
    assert fit_to_size(x, (8, 10)) is x
    assert torch.equal(fit_to_size(x, (7, 10)), x[..., :7, :])
    assert torch.equal(fit_to_size(x, (8, 9)), x[..., :, :9])
    assert torch.equal(fit_to_size(x, torch.Size([7, 9])), x[..., :7, :9])
    # smaller, larger by 2+, or mixed: bilinear resize to the target size
    for size in [(9, 10), (6, 10), (7, 12), (3, 4)]:
        expected = F.interpolate(
            x, size=size, mode='bilinear', align_corners=False)
        assert torch.equal(fit_to_size(x, size), expected)


def test_size_mismatch_beyond_rounding_pixel_is_resized():
    # kernel 3 / padding 0 makes the deconv 2H + 1 (not 2H): the sum still
    # gets each lateral's size.
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 4,
                       upsample_cfg=dict(type='deconv', kernel_size=3))
    assert neck.upsample_modules[0](torch.rand(1, 16, 4, 6)).shape[2:] == (
        9, 13)
    outs = neck(make_inputs(ODD_SIZES))
    assert [tuple(o.shape[2:]) for o in outs] == ODD_SIZES


# --------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['DySample', 'DySample+'])
def test_keys_and_stock_checkpoint(name):
    stock = shuffled_(FPN(IN_CHANNELS, OUT_CHANNELS, 5))
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg=name)
    stock_keys = set(stock.state_dict())
    assert 'lateral_convs.0.conv.weight' in stock_keys
    assert 'fpn_convs.3.conv.bias' in stock_keys
    leaves = ['offset.weight', 'offset.bias', 'init_pos']
    if name == 'DySample+':
        leaves.append('scope.weight')
    expected_up = {f'upsample_modules.{i}.{leaf}'
                   for i in range(3) for leaf in leaves}
    assert upsampler_keys(neck) == expected_up
    assert set(neck.state_dict()) == stock_keys | expected_up

    result = neck.load_state_dict(stock.state_dict(), strict=False)
    assert set(result.missing_keys) == expected_up
    assert result.unexpected_keys == []
    for key, value in stock.state_dict().items():
        assert torch.equal(neck.state_dict()[key], value), key


@pytest.mark.parametrize('name', list(DYSAMPLE_PRESETS))
def test_authors_layout_loads_strictly(name):
    preset = DYSAMPLE_PRESETS[name]
    stock = shuffled_(FPN(IN_CHANNELS, OUT_CHANNELS, 5))
    state = dict(stock.state_dict())
    # The authors' standalone layer: offset conv with bias, scope conv
    # without, and the initial positions as a buffer.
    if preset['style'] == 'pl':
        proj_in, proj_out = OUT_CHANNELS // 4, 2 * preset['groups']
    else:
        proj_in, proj_out = OUT_CHANNELS, 2 * preset['groups'] * 4
    gen = torch.Generator().manual_seed(3)
    layers = []
    for i in range(3):
        layer = {
            'offset.weight': torch.randn(
                proj_out, proj_in, 1, 1, generator=gen) * 0.1,
            'offset.bias': torch.randn(proj_out, generator=gen) * 0.1,
            'init_pos': authors_init_pos(2, preset['groups']),
        }
        if preset['dyscope']:
            layer['scope.weight'] = torch.randn(
                proj_out, proj_in, 1, 1, generator=gen)
        layers.append(layer)
        state.update(
            {f'upsample_modules.{i}.{k}': v
             for k, v in layer.items()})

    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg=name)
    # the initial positions we compute are the authors'
    assert torch.equal(neck.upsample_modules[0].init_pos,
                       layers[0]['init_pos'])
    neck.load_state_dict(state, strict=True)

    # Reference: stock FPN convs + standalone DySample layers, by hand.
    ups = []
    for layer in layers:
        up = DySample(OUT_CHANNELS, 2, **preset)
        up.load_state_dict(layer, strict=True)
        ups.append(up)
    inputs = make_inputs(ODD_SIZES)
    with torch.no_grad():
        lat = [conv(x) for conv, x in zip(stock.lateral_convs, inputs)]
        for i in range(3, 0, -1):
            h, w = lat[i - 1].shape[2:]
            lat[i - 1] = lat[i - 1] + ups[i - 1](lat[i])[..., :h, :w]
        ref = [conv(x) for conv, x in zip(stock.fpn_convs, lat)]
        ref.append(F.max_pool2d(ref[-1], 1, stride=2))
        outs = neck(inputs)
    for out, expected in zip(outs, ref):
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['DySample+', 'DySample-S'])
def test_init_weights_keeps_dysample_init(name):
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg=name)
    with torch.no_grad():  # spoil the parameters, as training would
        for param in neck.upsample_modules.parameters():
            param.normal_(0, 0.5)
    neck.init_weights()
    for layer in neck.upsample_modules:
        assert layer.offset.weight.std() < 0.002
        assert layer.offset.weight.abs().sum() > 0
        assert torch.equal(layer.offset.bias,
                           torch.zeros_like(layer.offset.bias))
        if layer.dyscope:
            assert torch.equal(layer.scope.weight,
                               torch.zeros_like(layer.scope.weight))
        torch.testing.assert_close(
            layer.init_pos, authors_init_pos(2, layer.groups))
    # the neck's own Xavier init did run on the other convolutions
    for conv in neck.lateral_convs:
        assert conv.conv.weight.std() > 0.05
        assert torch.equal(conv.conv.bias, torch.zeros_like(conv.conv.bias))


def test_init_weights_reapplies_pixel_shuffle_init():
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5,
                       upsample_cfg='pixel_shuffle')
    for layer in neck.upsample_modules:
        nn.init.constant_(layer.upsample_conv.bias, 1.0)
    neck.init_weights()
    for layer in neck.upsample_modules:
        bias = layer.upsample_conv.bias
        assert torch.equal(bias, torch.zeros_like(bias))


def test_pretrained_init_cfg_wins_over_upsampler_init(tmp_path):
    trained = shuffled_(
        DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg='DySample+'))
    path = str(tmp_path / 'neck.pth')
    torch.save(trained.state_dict(), path)
    neck = DySampleFPN(
        IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg='DySample+',
        init_cfg=[
            dict(type='Xavier', layer='Conv2d', distribution='uniform'),
            dict(type='Pretrained', checkpoint=path)
        ])
    neck.init_weights()
    for key, value in trained.state_dict().items():
        assert torch.equal(neck.state_dict()[key], value), key


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------
def test_string_and_dict_configs_are_equivalent():
    from mmengine.config import ConfigDict
    necks = [
        DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg=cfg)
        for cfg in ['DySample-S+', dict(type='DySample-S+'),
                    ConfigDict(type='DySample-S+')]
    ]
    reprs = {repr(n.upsample_modules) for n in necks}
    assert len(reprs) == 1 and 'groups=8' in reprs.pop()
    state = shuffled_(necks[0]).state_dict()
    inputs = make_inputs(ODD_SIZES)
    ref = necks[0](inputs)
    for neck in necks[1:]:
        neck.load_state_dict(state, strict=True)
        for out, expected in zip(neck(inputs), ref):
            assert torch.equal(out, expected)
    # extra keys reach the layer
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5,
                       upsample_cfg=dict(type='DySample', groups=2))
    assert all(m.groups == 2 for m in neck.upsample_modules)


def test_built_from_mmdet_registry_with_config_override():
    from mmdet.registry import MODELS
    from mmengine.config import Config
    base = Config(dict(neck=dict(type='FPN', in_channels=IN_CHANNELS,
                                 out_channels=OUT_CHANNELS, num_outs=5)))
    base.merge_from_dict(
        {'neck.type': 'DySampleFPN', 'neck.upsample_cfg': 'DySample'})
    neck = MODELS.build(base.neck)
    assert isinstance(neck, DySampleFPN) and len(neck.upsample_modules) == 3


@pytest.mark.parametrize('cfg,exc,match', [
    (3, TypeError, 'upsample_cfg'),
    (None, TypeError, 'upsample_cfg'),
    (['DySample'], TypeError, 'upsample_cfg'),
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(type='NoSuchUpsampler'), KeyError, 'NoSuchUpsampler'),
    (dict(type='DySample', groups=3), ValueError, 'groups'),
])
def test_bad_upsample_cfg_raises(cfg, exc, match):
    with pytest.raises(exc, match=match):
        DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg=cfg)


def test_wrong_number_of_inputs_raises():
    neck = DySampleFPN(IN_CHANNELS, OUT_CHANNELS, 5, upsample_cfg='DySample')
    with pytest.raises(ValueError, match='4 input levels'):
        neck(make_inputs(EVEN_SIZES)[:3])


# --------------------------------------------------------------------------
# in a detector
# --------------------------------------------------------------------------
def test_faster_rcnn_trains_on_cpu():
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(
        os.path.join(
            os.path.dirname(mmdet.__file__), '.mim', 'configs', 'faster_rcnn',
            'faster-rcnn_r50_fpn_1x_coco.py')).model
    cfg.backbone.update(
        depth=18, norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None)
    # only type and upsample_cfg change: the other FPN keys are inherited
    cfg.neck.update(
        type='DySampleFPN', in_channels=[64, 128, 256, 512], out_channels=32,
        upsample_cfg='DySample')
    cfg.rpn_head.update(in_channels=32, feat_channels=32)
    cfg.roi_head.bbox_roi_extractor.out_channels = 32
    cfg.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64)

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg)
    model.init_weights()
    assert isinstance(model.neck, DySampleFPN)
    assert model.neck.num_outs == 5
    assert model.neck.upsample_modules[0].offset.weight.std() < 0.002

    # one shape per image (demo_mm_inputs asserts len(shapes) == batch)
    packed = demo_mm_inputs(2, [[3, 64, 96]] * 2)
    data = model.data_preprocessor(packed, True)
    losses = model.forward(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    for pname, param in model.neck.upsample_modules.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    offset_grad = model.neck.upsample_modules[0].offset.weight.grad
    assert offset_grad.abs().sum() > 0
