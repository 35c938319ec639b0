# Copyright (c) mmdysample contributors. All rights reserved.
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS, DefaultScope

from mmdysample import DYSAMPLE_PRESETS, DySample
from mmdysample.models.upsamplers import reference_dysample_sample

PRESETS = list(DYSAMPLE_PRESETS)
#: (weights + biases) at C=256, s=2; the paper counts weights only.
PARAMS_C256_S2 = {
    'DySample': 8224,
    'DySample+': 16416,
    'DySample-S': 1040,
    'DySample-S+': 2064,
}


def fit_channels(name, scale, at_least):
    """Smallest valid channel count >= ``at_least`` for a preset and scale."""
    preset = DYSAMPLE_PRESETS[name]
    base = preset['groups']
    if preset['style'] == 'pl':
        base = math.lcm(base, scale * scale)
    return base * math.ceil(at_least / base)


def build(name, in_channels=32, scale_factor=2, **kwargs):
    return MODELS.build(
        dict(
            type=name,
            in_channels=in_channels,
            scale_factor=scale_factor,
            **kwargs))


def randomize(layer, std=0.5, seed=0):
    """Weights large enough that offsets move points across pixels."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return layer


def authors_forward(x, weights, scale, style, groups, dyscope):
    """An independent transcription of the authors' public forward pass.

    Written the way their standalone ``DySample`` computes it (meshgrid
    coordinates, a normaliser tensor, pixel shuffle, ``grid_sample`` with
    border padding), so it checks our layout of offsets and positions.
    """
    s, g = scale, groups
    h = torch.arange((-s + 1) / 2, (s - 1) / 2 + 1, dtype=x.dtype) / s
    init_pos = torch.stack(torch.meshgrid([h, h], indexing='ij')).transpose(
        1, 2).repeat(1, g, 1).reshape(1, -1, 1, 1)

    def conv(name, feat):
        return F.conv2d(feat, weights[f'{name}.weight'],
                        weights.get(f'{name}.bias'))

    if style == 'lp':
        feat = x
    else:
        feat = F.pixel_shuffle(x, s)
    off = conv('offset', feat)
    if dyscope:
        off = off * conv('scope', feat).sigmoid() * 0.5
    else:
        off = off * 0.25
    if style == 'pl':
        off = F.pixel_unshuffle(off, s)
    off = off + init_pos

    b, _, hh, ww = off.shape
    off = off.view(b, 2, -1, hh, ww)
    coords_h = torch.arange(hh, dtype=x.dtype) + 0.5
    coords_w = torch.arange(ww, dtype=x.dtype) + 0.5
    coords = torch.stack(torch.meshgrid([coords_w, coords_h], indexing='ij'))
    coords = coords.transpose(1, 2).unsqueeze(1).unsqueeze(0)
    normalizer = torch.tensor([ww, hh], dtype=x.dtype).view(1, 2, 1, 1, 1)
    coords = 2 * (coords + off) / normalizer - 1
    coords = F.pixel_shuffle(coords.view(b, -1, hh, ww), s).view(
        b, 2, -1, s * hh, s * ww).permute(0, 2, 3, 4, 1).flatten(0, 1)
    return F.grid_sample(
        x.reshape(b * g, -1, hh, ww),
        coords,
        mode='bilinear',
        align_corners=False,
        padding_mode='border').view(b, -1, s * hh, s * ww)


class TestRegistry:

    @pytest.mark.parametrize('scope', [None, 'mmdet', 'mmseg'])
    @pytest.mark.parametrize('name', PRESETS + ['dysample'])
    def test_build_upsample_layer_from_every_scope(self, scope, name):
        from mmcv.cnn import build_upsample_layer
        cfg = dict(type=name, in_channels=16, scale_factor=2)
        if scope is None:
            layer = build_upsample_layer(cfg)
        else:
            pytest.importorskip(scope)
            with DefaultScope.overwrite_default_scope(scope):
                assert DefaultScope.get_current_instance().scope_name == scope
                layer = build_upsample_layer(cfg)
        assert isinstance(layer, DySample)
        assert layer(torch.rand(1, 16, 3, 5)).shape == (1, 16, 6, 10)

    @pytest.mark.parametrize('name', PRESETS)
    def test_preset_settings(self, name):
        layer = build(name)
        for key, value in DYSAMPLE_PRESETS[name].items():
            assert getattr(layer, key) == value

    def test_alias_is_the_class(self):
        assert MODELS.get('dysample') is DySample
        assert MODELS.get('DySample') is DySample

    def test_kwargs_override_preset(self):
        layer = build('DySample-S+', groups=2, scale_factor=4)
        assert (layer.style, layer.groups, layer.dyscope) == ('pl', 2, True)
        assert layer.scale_factor == 4

    @pytest.mark.parametrize('name', PRESETS)
    def test_parameter_counts(self, name):
        layer = build(name, in_channels=256, scale_factor=2)
        assert sum(p.numel()
                   for p in layer.parameters()) == PARAMS_C256_S2[name]


class TestShapes:

    @pytest.mark.parametrize(
        'name,scale,size,batch',
        list(
            itertools.product(PRESETS, [2, 3, 4], [(1, 1), (5, 7), (8, 3)],
                              [0, 2])))
    def test_output_shape(self, name, scale, size, batch):
        c = fit_channels(name, scale, 32)
        layer = build(name, in_channels=c, scale_factor=scale)
        x = torch.rand(batch, c, *size)
        out = layer(x)
        assert out.shape == (batch, c, scale * size[0], scale * size[1])
        assert out.dtype == x.dtype

    @pytest.mark.parametrize('name', PRESETS)
    def test_scale_one_and_integral_float(self, name):
        layer = build(name, in_channels=16, scale_factor=1)
        assert layer(torch.rand(2, 16, 4, 6)).shape == (2, 16, 4, 6)
        assert build(name, in_channels=16, scale_factor=2.0).scale_factor == 2

    @pytest.mark.parametrize('name', PRESETS)
    def test_memory_layouts(self, name):
        layer = randomize(build(name, in_channels=16))
        x = torch.rand(2, 16, 7, 9)
        ref = layer(x)
        channels_last = x.to(memory_format=torch.channels_last)
        transposed = x.transpose(2, 3).contiguous().transpose(2, 3)
        sliced = torch.rand(2, 32, 7, 9)[:, ::2]
        sliced_ref = layer(sliced.contiguous())
        torch.testing.assert_close(layer(channels_last), ref)
        torch.testing.assert_close(layer(transposed), ref)
        torch.testing.assert_close(layer(sliced), sliced_ref)


class TestCorrectness:

    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(PRESETS, [2, 3, 4])))
    def test_zero_offset_is_bilinear(self, name, scale):
        c = fit_channels(name, scale, 32)
        layer = build(name, in_channels=c, scale_factor=scale).double()
        nn.init.zeros_(layer.offset.weight)
        x = torch.randn(2, c, 5, 6, dtype=torch.float64)
        expected = F.interpolate(
            x, scale_factor=scale, mode='bilinear', align_corners=False)
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)

    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(PRESETS, [2, 3, 4])))
    def test_nearest_init_is_nearest(self, name, scale):
        c = fit_channels(name, scale, 32)
        layer = build(
            name, in_channels=c, scale_factor=scale,
            init_mode='nearest').double()
        nn.init.zeros_(layer.offset.weight)
        x = torch.randn(2, c, 5, 6, dtype=torch.float64)
        expected = F.interpolate(x, scale_factor=scale, mode='nearest')
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)

    @pytest.mark.parametrize(
        'name,scale,extra',
        [(n, s, {}) for n in PRESETS for s in (2, 3)] + [
            ('DySample', 2, dict(hard_scope=True)),
            ('DySample', 2, dict(scope_factor=1.0)),
            ('DySample+', 3, dict(scope_factor=0.1, hard_scope=True)),
            ('DySample-S', 2, dict(init_mode='nearest')),
            ('DySample', 2, dict(groups=1)),
        ])
    def test_matches_loop_reference(self, name, scale, extra):
        """Every output pixel against a textbook bilinear loop."""
        c = fit_channels(name, scale, 8)
        layer = randomize(build(name, c, scale, **extra), std=1.0).double()
        x = torch.randn(2, c, 3, 4, dtype=torch.float64)
        s, g = layer.scale_factor, layer.groups
        if layer.style == 'pl':
            feat = F.pixel_shuffle(x, s)
        else:
            feat = x
        raw = layer.offset(feat)
        if layer.hard_scope:
            raw = raw.tanh()
        if layer.dyscope:
            raw = raw * layer.scope(feat).sigmoid() * 2 * layer.scope_factor
        else:
            raw = raw * layer.scope_factor
        if layer.style == 'pl':
            raw = F.pixel_unshuffle(raw, s)
        offset = raw + layer.init_pos
        if not layer.hard_scope and layer.scope_factor >= 0.25:
            # Offsets this large reach past the borders: clamping is
            # exercised.
            assert offset.abs().max() > 1.0
        expected = reference_dysample_sample(x, offset.detach(), s, g)
        torch.testing.assert_close(
            layer(x), expected, rtol=1e-9, atol=1e-9)

    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(PRESETS, [2, 3, 4])))
    def test_matches_authors_formulation(self, name, scale):
        c = fit_channels(name, scale, 16)
        layer = randomize(build(name, c, scale), std=0.3).double()
        weights = {k: v for k, v in layer.state_dict().items()}
        x = torch.randn(2, c, 5, 3, dtype=torch.float64)
        expected = authors_forward(x, weights, scale, layer.style,
                                   layer.groups, layer.dyscope)
        torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize('name', PRESETS)
    def test_gradcheck(self, name):
        channels = 8 if DYSAMPLE_PRESETS[name]['style'] == 'pl' else 4
        layer = randomize(build(name, channels, 2), std=0.3).double()
        x = torch.randn(1, channels, 3, 2, dtype=torch.float64,
                        requires_grad=True)
        params = tuple(layer.parameters())

        # Input gradient (offsets depend on x too) ...
        assert torch.autograd.gradcheck(layer, (x, ), eps=1e-6, atol=1e-5)
        # ... and parameter gradients through torch.func.
        names = [n for n, _ in layer.named_parameters()]

        def fn_params(*ws):
            return torch.func.functional_call(layer, dict(zip(names, ws)),
                                              (x.detach(), ))

        ws = tuple(p.detach().clone().requires_grad_(True) for p in params)
        assert torch.autograd.gradcheck(fn_params, ws, eps=1e-6, atol=1e-5)

    @pytest.mark.parametrize('name', PRESETS)
    def test_every_parameter_gets_a_gradient(self, name):
        layer = build(name, in_channels=32)  # default initialisation
        x = torch.randn(2, 32, 6, 5, requires_grad=True)
        layer(x).square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for pname, p in layer.named_parameters():
            assert p.grad is not None, pname
            assert p.grad.abs().sum() > 0, pname


class TestDtypes:

    @pytest.mark.parametrize('name', PRESETS)
    @pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12),
                                           (torch.float32, 1e-5),
                                           (torch.bfloat16, 5e-2),
                                           (torch.float16, 5e-3)])
    def test_cpu_dtypes_close_to_float64(self, name, dtype, tol):
        layer = randomize(build(name, 16), std=0.3)
        x = torch.randn(2, 16, 9, 11)
        ref = layer.double()(x.double())
        out = layer.to(dtype)(x.to(dtype))
        assert out.dtype == dtype
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)

    def test_half_keeps_subpixel_coordinates(self):
        """On a 512-wide map, half coordinates would round to 0.25 px."""
        layer = DySample(8, groups=1).half()
        nn.init.zeros_(layer.offset.weight)
        ramp = torch.arange(512.).view(1, 1, 1, 512).expand(1, 8, 2, 512)
        out = layer(ramp.half()).float()
        expected = F.interpolate(
            ramp, scale_factor=2, mode='bilinear', align_corners=False)
        # float16 holds these values (< 512) to 0.25; coordinates must not
        # add error on top.
        assert (out - expected).abs().max() <= 0.25

    def test_cpu_bf16_autocast(self):
        layer = randomize(DySample(16), std=0.3)
        x = torch.randn(2, 16, 8, 8)
        ref = layer(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = layer(x)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)

    @pytest.mark.gpu
    @pytest.mark.parametrize('name', PRESETS)
    @pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
    def test_cuda_half_and_autocast(self, name, dtype):
        layer = randomize(build(name, 64), std=0.3).cuda()
        x = torch.randn(2, 64, 120, 96, device='cuda')
        ref = layer(x)
        out = layer.to(dtype)(x.to(dtype))
        assert out.dtype == dtype and torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)
        layer.float()
        with torch.autocast('cuda', dtype=dtype):
            out = layer(x)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)


class TestErrors:

    @pytest.mark.parametrize('kwargs,exc,match', [
        (dict(in_channels=30, groups=4), ValueError, 'groups'),
        (dict(in_channels=24, style='pl', groups=2, scale_factor=4),
         ValueError, r'scale_factor\*\*2'),
        (dict(in_channels=16, groups=0), ValueError, 'groups'),
        (dict(in_channels=16, style='xy'), ValueError, "'xy'"),
        (dict(in_channels=16, scale_factor=1.5), ValueError, 'scale_factor'),
        (dict(in_channels=16, scale_factor=0), ValueError, 'scale_factor'),
        (dict(in_channels=16, scale_factor='2'), TypeError, 'scale_factor'),
        (dict(in_channels=16, scale_factor=True), TypeError, 'scale_factor'),
        (dict(in_channels=0), ValueError, 'in_channels'),
        (dict(in_channels=16, init_mode='bicubic'), ValueError,
         'init_mode'),
        (dict(in_channels=16, scope_factor=0), ValueError, 'scope_factor'),
        (dict(in_channels=16, dyscope='yes'), TypeError, 'dyscope'),
    ])
    def test_bad_arguments(self, kwargs, exc, match):
        with pytest.raises(exc, match=match):
            DySample(**kwargs)

    def test_message_names_the_values(self):
        with pytest.raises(ValueError) as err:
            DySample(30, groups=4)
        assert '30' in str(err.value) and '4' in str(err.value)

    @pytest.mark.parametrize('x,exc,match', [
        (torch.rand(16, 4, 4), ValueError, '4-D'),
        (torch.rand(1, 1, 16, 4, 4), ValueError, '4-D'),
        (torch.rand(1, 8, 4, 4), ValueError, 'in_channels=16'),
        (torch.ones(1, 16, 4, 4, dtype=torch.long), TypeError, 'floating'),
    ])
    def test_bad_inputs(self, x, exc, match):
        with pytest.raises(exc, match=match):
            DySample(16)(x)


class TestInitAndState:

    @pytest.mark.parametrize('name', PRESETS)
    def test_init_values(self, name):
        layer = build(name, in_channels=256)
        assert 0.0005 < layer.offset.weight.std() < 0.002
        assert torch.all(layer.offset.bias == 0)
        if layer.dyscope:
            assert torch.all(layer.scope.weight == 0)

    @pytest.mark.parametrize('name', PRESETS)
    def test_init_survives_parent_xavier(self, name):

        class Parent(BaseModule):

            def __init__(self):
                super().__init__(
                    init_cfg=dict(
                        type='Xavier', layer='Conv2d', distribution='uniform'))
                self.conv = nn.Conv2d(256, 256, 1)
                self.up = build(name, in_channels=256)

        parent = Parent()
        parent.init_weights()
        # The parent's Xavier did reach its own conv ...
        assert parent.conv.weight.std() > 0.02
        # ... and the upsampler restored its own init afterwards.
        assert parent.up.offset.weight.std() < 0.002
        assert torch.all(parent.up.offset.bias == 0)
        if parent.up.dyscope:
            assert torch.all(parent.up.scope.weight == 0)

    @pytest.mark.parametrize('name', PRESETS)
    def test_state_dict_keys(self, name):
        keys = set(build(name).state_dict())
        expected = {'offset.weight', 'offset.bias', 'init_pos'}
        if DYSAMPLE_PRESETS[name]['dyscope']:
            expected.add('scope.weight')
        assert keys == expected

    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(PRESETS, [2, 3, 4])))
    def test_loads_authors_layout_strictly(self, name, scale):
        """A state dict shaped like the authors' standalone layer loads."""
        preset = DYSAMPLE_PRESETS[name]
        c, s, g = fit_channels(name, scale, 64), scale, preset['groups']
        c_in = c // s**2 if preset['style'] == 'pl' else c
        c_out = 2 * g if preset['style'] == 'pl' else 2 * g * s * s
        h = torch.arange((-s + 1) / 2, (s - 1) / 2 + 1) / s
        init_pos = torch.stack(torch.meshgrid(
            [h, h], indexing='ij')).transpose(1, 2).repeat(1, g,
                                                           1).reshape(
                                                               1, -1, 1, 1)
        state = {
            'offset.weight': torch.randn(c_out, c_in, 1, 1) * 0.1,
            'offset.bias': torch.randn(c_out) * 0.1,
            'init_pos': init_pos,
        }
        if preset['dyscope']:
            state['scope.weight'] = torch.randn(c_out, c_in, 1, 1) * 0.1
        layer = build(name, in_channels=c, scale_factor=s)
        layer.load_state_dict(state, strict=True)
        torch.testing.assert_close(layer.init_pos, init_pos)
        x = torch.randn(1, c, 4, 5)
        torch.testing.assert_close(
            layer(x),
            authors_forward(x, state, s, preset['style'], g,
                            preset['dyscope']),
            rtol=1e-5,
            atol=1e-5)


class TestScopeBias:
    """``scope_bias=True``: the layout of the authors' detection code."""

    DYSCOPE = [name for name in PRESETS if DYSAMPLE_PRESETS[name]['dyscope']]
    #: the scope conv's bias adds its output channels (2 g s**2 or 2 g)
    PARAMS_C256_S2 = {'DySample+': 16416 + 32, 'DySample-S+': 2064 + 16}

    @pytest.mark.parametrize('name', DYSCOPE)
    def test_parameter_counts(self, name):
        layer = build(name, in_channels=256, scale_factor=2, scope_bias=True)
        assert layer.scope.bias is not None
        assert sum(p.numel()
                   for p in layer.parameters()) == self.PARAMS_C256_S2[name]
        # The default is the standalone layer's, without the bias.
        assert build(name, in_channels=256).scope.bias is None

    @pytest.mark.parametrize('name', DYSCOPE)
    def test_state_dict_keys_and_repr(self, name):
        layer = build(name, scope_bias=True)
        assert set(layer.state_dict()) == {
            'offset.weight', 'offset.bias', 'init_pos', 'scope.weight',
            'scope.bias'
        }
        assert 'scope_bias=True' in repr(layer)
        assert 'scope_bias' not in repr(build(name))

    @pytest.mark.parametrize('kwargs,exc,match', [
        (dict(scope_bias='yes', dyscope=True), TypeError, 'scope_bias'),
        (dict(scope_bias=1, dyscope=True), TypeError, 'scope_bias'),
        (dict(scope_bias=True), ValueError, 'scope_bias=True.*dyscope'),
        (dict(scope_bias=True, dyscope=False), ValueError, 'dyscope=False'),
    ])
    def test_bad_arguments(self, kwargs, exc, match):
        with pytest.raises(exc, match=match):
            DySample(16, **kwargs)

    @pytest.mark.parametrize('name', DYSCOPE)
    def test_init_is_zero_after_parent_xavier(self, name):
        parent = BaseModule(
            init_cfg=dict(type='Xavier', layer='Conv2d', bias=0.5))
        parent.up = build(name, in_channels=64, scope_bias=True)
        parent.init_weights()
        assert torch.all(parent.up.scope.bias == 0)
        assert torch.all(parent.up.scope.weight == 0)

    @pytest.mark.parametrize('name', DYSCOPE)
    def test_every_parameter_gets_a_gradient(self, name):
        layer = build(name, in_channels=32, scope_bias=True)
        layer(torch.randn(2, 32, 6, 5)).square().sum().backward()
        for pname, p in layer.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, pname

    @pytest.mark.parametrize('name,scale',
                             list(itertools.product(DYSCOPE, [2, 3])))
    def test_matches_authors_detection_forward(self, name, scale):
        """The fork's layer: the scope conv's bias enters the sigmoid."""
        c = fit_channels(name, scale, 16)
        layer = randomize(
            build(name, c, scale, scope_bias=True), std=0.3).double()
        weights = dict(layer.state_dict())
        assert weights['scope.bias'].abs().min() > 0
        x = torch.randn(2, c, 5, 3, dtype=torch.float64)
        expected = authors_forward(x, weights, scale, layer.style,
                                   layer.groups, True)
        torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)
        # The bias matters: without it the function differs.
        without = {k: v for k, v in weights.items() if k != 'scope.bias'}
        assert not torch.allclose(
            authors_forward(x, without, scale, layer.style, layer.groups,
                            True), expected)

    @staticmethod
    def _load(loader, layer, state, strict):
        if loader == 'torch':
            return layer.load_state_dict(state, strict=strict)
        from mmengine.runner.checkpoint import load_state_dict
        return load_state_dict(layer, state, strict=strict, logger='silent')

    @pytest.mark.parametrize('loader', ['torch', 'mmengine'])
    @pytest.mark.parametrize('strict', [True, False])
    @pytest.mark.parametrize('source_bias', [True, False])
    def test_load_refuses_other_layout(self, loader, strict, source_bias):
        source = build('DySample+', scope_bias=source_bias)
        target = build('DySample+', scope_bias=not source_bias)
        before = {k: v.clone() for k, v in target.state_dict().items()}
        with pytest.raises(ValueError) as err:
            self._load(loader, target, source.state_dict(), strict)
        message = str(err.value)
        assert 'scope.bias' in message
        assert f'scope_bias={not source_bias}' in message
        assert f'scope_bias={source_bias}' in message  # the fix
        # Refused before anything was copied.
        for key, value in target.state_dict().items():
            assert torch.equal(value, before[key]), key

    @pytest.mark.parametrize('loader', ['torch', 'mmengine'])
    @pytest.mark.parametrize('strict', [True, False])
    def test_load_same_layout_under_a_prefix(self, loader, strict):
        source = nn.Sequential(
            randomize(build('DySample+', scope_bias=True)))
        target = nn.Sequential(build('DySample+', scope_bias=True))
        self._load(loader, target, source.state_dict(), strict)
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key

    @pytest.mark.parametrize('strict', [True, False])
    def test_load_refuses_scope_into_static_layer(self, strict):
        source = build('DySample+').state_dict()
        with pytest.raises(ValueError, match='dyscope=False'):
            build('DySample').load_state_dict(source, strict=strict)

    def test_state_dict_without_the_layer_is_left_to_the_loader(self):
        """A partial state dict (e.g. a backbone) reports missing keys."""
        layer = build('DySample+', scope_bias=True)
        result = layer.load_state_dict({}, strict=False)
        assert 'scope.bias' in result.missing_keys
