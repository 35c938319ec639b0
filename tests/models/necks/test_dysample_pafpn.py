# Copyright (c) mmdysample contributors. All rights reserved.
"""DySampleCSPNeXtPAFPN (RTMDet) and DySampleYOLOXPAFPN against mmdet's
CSPNeXtPAFPN and YOLOXPAFPN: mmdet's own test case, stock equality, every
upsampler at the zoo's channels, the step inputs, init and errors."""
import pytest
import torch

pytest.importorskip('mmdet')

from mmcv.cnn.bricks import DepthwiseSeparableConvModule  # noqa: E402
from mmdet.models.necks import CSPNeXtPAFPN, YOLOXPAFPN  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from host_checks import (UPSAMPLERS, Probe, check_trains,  # noqa: E402
                         count_params, make_feats, randomize_, same_signature,
                         weighted_sum)

from mmdysample import DYSAMPLE_PRESETS, DySample  # noqa: E402
from mmdysample.models import build_upsampler  # noqa: E402
from mmdysample.models.necks import (DySampleCSPNeXtPAFPN,  # noqa: E402
                                     DySampleYOLOXPAFPN)
from mmdysample.utils.host_swap import drop_in_hosts  # noqa: E402

#: host -> the stock neck it replaces
HOSTS = {DySampleCSPNeXtPAFPN: CSPNeXtPAFPN, DySampleYOLOXPAFPN: YOLOXPAFPN}
IN_CHANNELS = [8, 16, 32]
EVEN_SIZES = [(16, 24), (8, 12), (4, 6)]
#: A 600 x 1000 image through a stride-8..32 backbone (ceil halving): the
#: stock neck's concatenation fails on 76 x 126 against 75 x 125.
ODD_SIZES = [(75, 125), (38, 63), (19, 32)]
#: Small odd sizes for the runs at the zoo's channels.
SMALL_ODD = [(9, 11), (5, 6), (3, 3)]
#: The zoo's neck input channels (the steps run at the first two).
ZOO = {
    'rtmdet-s': (DySampleCSPNeXtPAFPN, [128, 256, 512]),
    'rtmdet-l': (DySampleCSPNeXtPAFPN, [256, 512, 1024]),
    'yolox-s': (DySampleYOLOXPAFPN, [128, 256, 512]),
}


def neck(host, upsample_cfg=None, in_channels=IN_CHANNELS, **kwargs):
    kwargs.setdefault('num_csp_blocks', 1)
    if upsample_cfg is not None:
        kwargs['upsample_cfg'] = upsample_cfg
    return host(in_channels, 8, **kwargs)


# ---------------------------------------------------------------------------
# mmdet's own test case, with our classes in place of mmdet's
# ---------------------------------------------------------------------------
# Re-typed from mmdetection's tests/test_models/test_necks/test_necks.py::
# test_yolox_pafpn (OpenMMLab, Apache-2.0; read at commit 6b37e00, the 3.x
# branch). mmdet has no CSPNeXtPAFPN test; the same case is run on it.
@pytest.mark.parametrize('host', list(HOSTS))
@pytest.mark.parametrize('upsample_cfg',
                         [None, 'DySample', dict(type='FADE')])
def test_mmdet_yolox_pafpn_case(host, upsample_cfg):
    s = 64
    in_channels = [8, 16, 32, 64]
    feat_sizes = [s // 2**i for i in range(4)]  # [64, 32, 16, 8]
    out_channels = 24
    feats = [
        torch.rand(1, in_channels[i], feat_sizes[i], feat_sizes[i])
        for i in range(len(in_channels))
    ]
    extra = {} if upsample_cfg is None else dict(upsample_cfg=upsample_cfg)
    neck = host(in_channels=in_channels, out_channels=out_channels, **extra)
    outs = neck(feats)
    assert len(outs) == len(feats)
    for i in range(len(feats)):
        assert outs[i].shape[1] == out_channels
        assert outs[i].shape[2] == outs[i].shape[3] == s // (2**i)

    # test depth-wise
    neck = host(
        in_channels=in_channels,
        out_channels=out_channels,
        use_depthwise=True,
        **extra)
    assert isinstance(neck.downsamples[0], DepthwiseSeparableConvModule)
    outs = neck(feats)
    assert len(outs) == len(feats)
    for i in range(len(feats)):
        assert outs[i].shape[1] == out_channels
        assert outs[i].shape[2] == outs[i].shape[3] == s // (2**i)


@pytest.mark.parametrize('host', list(HOSTS))
def test_signature_matches_stock(host):
    same_signature(host, HOSTS[host])


# ---------------------------------------------------------------------------
# the default (and any dict without ``type``) is the stock neck, bit for bit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('host', list(HOSTS))
@pytest.mark.parametrize('upsample_cfg', [
    None,
    dict(scale_factor=2, mode='nearest'),
    dict(scale_factor=2, mode='bilinear', align_corners=False),
])
def test_stock_cfg_equals_stock(host, upsample_cfg):
    kwargs = dict(num_csp_blocks=1)
    if upsample_cfg is not None:
        kwargs['upsample_cfg'] = upsample_cfg
    stock = randomize_(HOSTS[host](IN_CHANNELS, 8, **kwargs)).eval()
    ours = host(IN_CHANNELS, 8, **kwargs).eval()
    assert ours.upsample_modules is None
    assert ours.upsample is not None
    # state dicts load both ways, strictly
    ours.load_state_dict(stock.state_dict(), strict=True)
    randomize_(host(IN_CHANNELS, 8, **kwargs), seed=3).load_state_dict(
        ours.state_dict(), strict=True)
    HOSTS[host](IN_CHANNELS, 8, **kwargs).load_state_dict(
        ours.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, EVEN_SIZES)
    with torch.no_grad():
        expected = stock(feats)
        outs = ours(feats)
    assert len(outs) == 3
    for out, ref in zip(outs, expected):
        assert torch.equal(out, ref)
    assert count_params(ours) == count_params(stock)


@pytest.mark.parametrize('host', list(HOSTS))
def test_nearest_steps_equal_stock(host):
    """The learnable path, pinned to the stock forward: one x2 nearest layer
    per step computes what the shared ``nn.Upsample`` does."""
    stock = randomize_(HOSTS[host](IN_CHANNELS, 8, num_csp_blocks=1)).eval()
    ours = neck(host, 'nearest').eval()
    assert ours.upsample is None and len(ours.upsample_modules) == 2
    ours.load_state_dict(stock.state_dict(), strict=True)
    feats = make_feats(IN_CHANNELS, EVEN_SIZES)
    with torch.no_grad():
        for out, ref in zip(ours(feats), stock(feats)):
            assert torch.equal(out, ref)


@pytest.mark.parametrize('host', list(HOSTS))
def test_sizes_not_exactly_2x_are_fitted(host):
    feats = make_feats(IN_CHANNELS, ODD_SIZES, batch=1)
    with pytest.raises(RuntimeError, match='Sizes of tensors must match'):
        with torch.no_grad():
            neck(host).eval()(feats)
    ours = neck(host, 'nearest').eval()
    with torch.no_grad():
        outs = ours(feats)
    assert [tuple(o.shape) for o in outs] == [(1, 8, *s) for s in ODD_SIZES]


# ---------------------------------------------------------------------------
# every upsampler at the zoo's channels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('model', list(ZOO))
@pytest.mark.parametrize('name', UPSAMPLERS)
def test_every_upsampler_trains_at_zoo_channels(model, name):
    host, in_channels = ZOO[model]
    ours = neck(host, name, in_channels=in_channels)
    layers = ours.upsample_layers()
    assert len(layers) == 2 and layers[0] is not layers[1]
    outs = check_trains(
        ours, lambda m: m(make_feats(in_channels, SMALL_ODD, batch=1)))
    assert [tuple(o.shape) for o in outs] == [(1, 8, *s) for s in SMALL_ODD]


def test_carafe_builds_at_zoo_channels():
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import CARAFEPack
    ours = neck(DySampleCSPNeXtPAFPN, 'carafe', in_channels=[128, 256, 512])
    assert [(type(m), m.channels) for m in ours.upsample_modules
            ] == [(CARAFEPack, 128), (CARAFEPack, 256)]


@pytest.mark.parametrize('model', list(ZOO))
@pytest.mark.parametrize('name', ['DySample', 'DySample+', 'FADE'])
def test_parameter_delta_is_the_step_upsamplers(model, name):
    host, in_channels = ZOO[model]
    stock = HOSTS[host](in_channels, 8, num_csp_blocks=1)
    ours = neck(host, name, in_channels=in_channels)
    per_step = [
        count_params(build_upsampler(name, c, guide_channels=c))
        for c in in_channels[:2]
    ]
    assert per_step[0] > 0
    assert count_params(ours) - count_params(stock) == sum(per_step)


# ---------------------------------------------------------------------------
# each step reads the map it should, with the guide it should
# ---------------------------------------------------------------------------
def pafpn_reference(neck, xs, up):
    """mmdet's forward written out, with ``up(layer, x, guide)`` at step
    ``i`` (level ``i + 1`` to ``i``, guide ``xs[i]``)."""
    n = len(xs)
    inner = [xs[-1]]
    for idx in range(n - 1, 0, -1):
        high = neck.reduce_layers[n - 1 - idx](inner[0])
        inner[0] = high
        upsampled = up(neck.upsample_modules[idx - 1], high, xs[idx - 1])
        inner.insert(
            0, neck.top_down_blocks[n - 1 - idx](torch.cat(
                [upsampled, xs[idx - 1]], 1)))
    outs = [inner[0]]
    for idx in range(n - 1):
        outs.append(neck.bottom_up_blocks[idx](torch.cat(
            [neck.downsamples[idx](outs[-1]), inner[idx + 1]], 1)))
    return [conv(out) for conv, out in zip(neck.out_convs, outs)]


@pytest.mark.parametrize('host', list(HOSTS))
def test_guided_gradients_equal_float64_reference(host):
    ours = neck(host, dict(type=Probe)).double().eval()
    params = list(ours.parameters())
    xs = make_feats(IN_CHANNELS, EVEN_SIZES, dtype=torch.float64, grad=True)
    grads = torch.autograd.grad(weighted_sum(ours(xs)), params + xs)
    expected = pafpn_reference(ours, xs, lambda m, x, g: m(x, g))
    expected_grads = torch.autograd.grad(weighted_sum(expected), params + xs)
    names = [n for n, _ in ours.named_parameters()]
    names += [f'input {i}' for i in range(3)]
    for name, grad, ref in zip(names, grads, expected_grads):
        torch.testing.assert_close(grad, ref, msg=name)
    # the guide's path is in use: the gates learn
    by_name = dict(zip(names, grads))
    for k in range(2):
        assert by_name[f'upsample_modules.{k}.gate.weight'].abs().sum() > 0


@pytest.mark.parametrize('host', list(HOSTS))
def test_each_step_upsamples_the_map_it_should(host):
    ours = neck(host, 'nearest').eval()
    seen = {}
    for k, layer in enumerate(ours.upsample_modules):
        layer.register_forward_hook(
            lambda m, args, out, k=k: seen.__setitem__(k, args[0]))
    xs = make_feats(IN_CHANNELS, EVEN_SIZES)
    expected = {}

    def up(layer, x, guide):
        k = next(i for i, m in enumerate(ours.upsample_modules) if m is layer)
        expected[k] = x
        return torch.nn.functional.interpolate(x, scale_factor=2)

    with torch.no_grad():
        outs = ours(xs)
        reference = pafpn_reference(ours, xs, up)
    assert sorted(seen) == sorted(expected) == [0, 1]
    # step 0 upsamples the reduced 1/16 map, step 1 the reduced 1/32 one
    assert seen[1].shape[1:] == (16, 4, 6)
    assert seen[0].shape[1:] == (8, 8, 12)
    for k in expected:
        assert torch.equal(seen[k], expected[k])
    for out, ref in zip(outs, reference):
        assert torch.equal(out, ref)


# ---------------------------------------------------------------------------
# init, keys, registry, errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('host', list(HOSTS))
def test_kaiming_init_keeps_dysample_init(host):
    ours = neck(host, 'DySample+')
    with torch.no_grad():  # as a Kaiming init would leave them
        for layer in ours.upsample_modules:
            layer.offset.weight.uniform_(-0.3, 0.3)
    ours.init_weights()
    for layer in ours.upsample_modules:
        assert 0.0005 < layer.offset.weight.std() < 0.0015
        assert not layer.offset.bias.any() and not layer.scope.weight.any()
    # the neck's own convolutions got the Kaiming init (not zero, not BN's)
    assert ours.out_convs[0].conv.weight.std() > 0.01


@pytest.mark.parametrize('host', list(HOSTS))
def test_upsamplers_draw_nothing_from_the_global_rng(host):

    def build(cfg):
        torch.manual_seed(0)
        module = neck(host, cfg)
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

    stock, stream = build(None)
    for cfg in ('DySample', 'FADE', 'pixel_shuffle'):
        others, after = build(cfg)
        assert others.keys() == stock.keys()
        for name in stock:
            assert torch.equal(others[name], stock[name]), (cfg, name)
        assert torch.equal(after, stream), cfg


@pytest.mark.parametrize('host', list(HOSTS))
def test_stock_checkpoint_misses_only_the_upsamplers(host):
    stock = randomize_(HOSTS[host](IN_CHANNELS, 8, num_csp_blocks=1))
    ours = neck(host, 'DySample')
    result = ours.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {
        f'upsample_modules.{i}.{leaf}'
        for i in range(2)
        for leaf in ('offset.weight', 'offset.bias', 'init_pos')
    }


@pytest.mark.parametrize('host', list(HOSTS))
def test_registry_and_drop_in_table(host):
    built = MODELS.build(
        dict(
            type=host.__name__,
            in_channels=IN_CHANNELS,
            out_channels=8,
            num_csp_blocks=1,
            upsample_cfg=dict(type='DySample', groups=2)))
    assert type(built) is host
    assert {m.groups for m in built.upsample_modules} == {2}
    assert "upsample_cfg={'type': 'DySample', 'groups': 2}" in repr(built)
    assert drop_in_hosts()[HOSTS[host]] is host


@pytest.mark.parametrize('host', list(HOSTS))
def test_wrong_guide_is_a_value_error_naming_host_and_step(host):
    ours = neck(host, 'FADE')
    # levels 3x apart: no guide fits the x2 step
    feats = make_feats(IN_CHANNELS, [(45, 45), (15, 15), (5, 5)], batch=1)
    with pytest.raises(
            ValueError,
            match=rf'{host.__name__} stage 1: the guide of shape '
            r'\(1, 16, 15, 15\)'):
        ours(feats)


@pytest.mark.parametrize('host', list(HOSTS))
@pytest.mark.parametrize('cfg,exc,match', [
    (None, TypeError, 'upsample_cfg'),
    (3, TypeError, 'upsample_cfg'),
    ('NoSuchUpsampler', KeyError, 'NoSuchUpsampler'),
    (dict(type='DySample', groups=3), ValueError, 'groups'),
])
def test_bad_upsample_cfg(host, cfg, exc, match):
    with pytest.raises(exc, match=match):
        host(IN_CHANNELS, 8, upsample_cfg=cfg)


def test_config_merged_with_mmdet_yolox_upsample_cfg_is_refused(tmp_path):
    """mmdet's YOLOX config sets nn.Upsample kwargs; a dict with ``type``
    inheriting it merges with them: a ValueError that says what to do."""
    from mmengine import Config
    base = tmp_path / 'base.py'
    base.write_text('neck = dict(upsample_cfg=dict(scale_factor=2, '
                    "mode='nearest'))\n")
    child = tmp_path / 'child.py'
    child.write_text("_base_ = './base.py'\n"
                     "neck = dict(upsample_cfg=dict(type='DySample'))\n")
    cfg = Config.fromfile(child).neck.upsample_cfg
    assert cfg == dict(scale_factor=2, mode='nearest', type='DySample')
    with pytest.raises(ValueError, match="Name the upsampler instead"):
        DySampleYOLOXPAFPN(IN_CHANNELS, 8, upsample_cfg=cfg)
    # nn.Upsample types take a mode; a name replaces the dict
    neck(DySampleYOLOXPAFPN, dict(type='bilinear', mode='bilinear'))
    neck(DySampleYOLOXPAFPN, 'DySample')


@pytest.mark.parametrize('host', list(HOSTS))
def test_wrong_number_of_inputs(host):
    ours = neck(host, 'DySample')
    with pytest.raises(ValueError, match='expects 3 inputs'):
        ours(make_feats(IN_CHANNELS[:2], EVEN_SIZES[:2]))


def test_presets_are_dysample():
    for name in DYSAMPLE_PRESETS:
        ours = neck(DySampleCSPNeXtPAFPN, name)
        assert [type(m) for m in ours.upsample_modules] == [DySample] * 2
