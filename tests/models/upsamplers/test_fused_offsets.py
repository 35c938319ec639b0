# Copyright (c) mmdysample contributors. All rights reserved.
"""The fused offset projection and the scoped CPU kernel, each against the
paper's formulation (``sampling_offsets_reference``, grid_sample)."""
import copy
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdysample import DYSAMPLE_PRESETS, DySample
from mmdysample.models.upsamplers import fast_cpu, offsets, sampling
from mmdysample.models.upsamplers.sampling import dysample_sample_reference

PRESETS = list(DYSAMPLE_PRESETS)
needs_kernel = pytest.mark.skipif(
    not fast_cpu.available(), reason='the CPU kernel could not be built')


def channels(name, scale, at_least=8):
    preset = DYSAMPLE_PRESETS[name]
    base = preset['groups']
    if preset['style'] == 'pl':
        base = math.lcm(base, scale * scale)
    return base * math.ceil(at_least / base)


def layer_for(name, scale, scope_bias=False, dtype=torch.float64, seed=0,
              **kwargs):
    """A preset with weights large enough to move points across pixels.

    ``scope_bias`` swaps in a dynamic-scope conv with a bias, as the
    authors' detection checkpoints have.
    """
    layer = DySample(channels(name, scale), scale, **{
        **DYSAMPLE_PRESETS[name],
        **kwargs
    })
    if scope_bias:
        old = layer.scope
        layer.scope = nn.Conv2d(old.in_channels, old.out_channels, 1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.7)
    return layer.to(dtype)


def reference_forward(layer, x):
    """The whole layer in the paper's formulation, grid_sample sampling."""
    return dysample_sample_reference(x, layer.sampling_offsets_reference(x),
                                     layer.scale_factor, layer.groups)


CASES = [(n, s, False) for n in PRESETS for s in (1, 2, 3)] + [
    ('DySample+', 2, True), ('DySample-S+', 3, True)
]


@pytest.mark.parametrize('name,scale,scope_bias', CASES)
def test_fused_offsets_match_reference(name, scale, scope_bias):
    layer = layer_for(name, scale, scope_bias)
    x = torch.randn(2, layer.in_channels, 5, 4, dtype=torch.float64,
                    requires_grad=True)
    fused = layer.sampling_offsets(x)
    ref = layer.sampling_offsets_reference(x)
    assert ref.abs().max() > 1.0  # points leave their pixel
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    wrt = [x] + list(layer.parameters())
    for a, b in zip(torch.autograd.grad(fused, wrt, grad),
                    torch.autograd.grad(ref, wrt, grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('style,scale',
                         list(itertools.product(['lp', 'pl'], [1, 2, 3])))
def test_project_is_the_shuffled_projection(style, scale):
    s = scale
    conv = nn.Conv2d(18 if style == 'lp' else 2, 6, 1).double()
    x = torch.randn(3, 18, 4, 5, dtype=torch.float64)
    if style == 'lp':
        expected = conv(x)
    else:
        x = x[:, :2 * s * s]
        expected = F.pixel_unshuffle(conv(F.pixel_shuffle(x, s)), s)
    out = offsets.project(x, conv.weight, conv.bias, style, s)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # Other layouts and an empty batch take the same formula.
    torch.testing.assert_close(
        offsets.project(x.to(memory_format=torch.channels_last),
                        conv.weight, conv.bias, style, s), expected)
    assert offsets.project(x[:0], conv.weight, conv.bias, style,
                           s).shape == (0, ) + expected.shape[1:]


def test_stacked_weights_fill_missing_biases():
    off, scope = nn.Conv2d(4, 6, 1), nn.Conv2d(4, 6, 1, bias=False)
    weight, bias = offsets.stacked_weights(off, scope)
    assert weight.shape == (12, 4, 1, 1)
    torch.testing.assert_close(bias[:6], off.bias)
    assert torch.all(bias[6:] == 0)
    off_only = nn.Conv2d(4, 6, 1, bias=False)
    assert offsets.stacked_weights(off_only, scope)[1] is None
    assert offsets.stacked_weights(off)[0] is off.weight


@needs_kernel
@pytest.mark.parametrize('name,scale,scope_bias', CASES)
def test_layer_forward_and_gradients_match_reference(name, scale,
                                                     scope_bias,
                                                     monkeypatch):
    layer = layer_for(name, scale, scope_bias)
    calls = []
    real = fast_cpu.fused_sample_cpu
    monkeypatch.setattr(fast_cpu, 'fused_sample_cpu',
                        lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, layer.in_channels, 5, 4, dtype=torch.float64,
                    requires_grad=True)
    out = layer(x)
    assert calls, 'the layer did not take the fused kernel'
    ref = reference_forward(layer, x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    wrt = [x] + list(layer.parameters())
    for a, b in zip(torch.autograd.grad(out, wrt, grad),
                    torch.autograd.grad(ref, wrt, grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_kernel
@pytest.mark.parametrize('name', PRESETS)
@pytest.mark.parametrize('seed', [0, 1])
def test_float32_within_1e6_of_the_unfused_kernel(name, seed):
    """Against the paper's offsets sampled by the plain kernel: the same
    sampling arithmetic, so only the fusion can differ. Errors are relative
    to the largest value of each tensor (weight gradients sum over every
    pixel, in another order than the unfused convolutions)."""
    layer = layer_for(name, 2, dtype=torch.float32, seed=seed)
    with torch.no_grad():  # offsets of about a pixel, as trained layers
        layer.offset.weight.mul_(0.1)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, layer.in_channels, 7, 6, generator=gen)
    x.requires_grad_()
    out = layer(x)
    ref = sampling.dysample_sample(x, layer.sampling_offsets_reference(x),
                                   2, layer.groups)
    grad = torch.randn(ref.shape, generator=gen)
    wrt = [x] + list(layer.parameters())
    pairs = [(out, ref)] + list(
        zip(torch.autograd.grad(out, wrt, grad),
            torch.autograd.grad(ref, wrt, grad)))
    for a, b in pairs:
        assert (a - b).abs().max() <= 1e-6 * b.abs().max()


def fused_inputs(style, s, g, dyscope, bias, w, dtype=torch.float64,
                 seed=3, n=2):
    """Features, a stacked projection and initial positions for the fused
    kernel, with offsets of a few pixels (points leave the map)."""
    gen = torch.Generator().manual_seed(seed)
    c = 2 * s * s * (4 if style == 'pl' else 1)
    cin, p = (c, 2 * g * s * s) if style == 'lp' else (c // (s * s), 2 * g)
    p *= 2 if dyscope else 1
    x = torch.randn(n, c, 3, w, dtype=dtype, generator=gen)
    weight = torch.randn(p, cin, 1, 1, dtype=dtype, generator=gen) * 2
    b = torch.randn(p, dtype=dtype, generator=gen) if bias else None
    init = torch.randn(2 * g * s * s, dtype=dtype, generator=gen) * 0.3
    return x, weight, b, init


def torch_fused(x, weight, bias, init, style, s, g, dyscope, factor=0.3):
    """The fused kernel's function in torch: project, scope, sample."""
    raw = offsets.project(x, weight, bias, style, s)
    off = offsets.scope_offsets(raw, factor, dyscope, False,
                                init.reshape(1, -1, 1, 1))
    return dysample_sample_reference(x, off, s, g)


FUSED_CASES = [(st, s, d, b) for st in ('lp', 'pl') for s in (1, 2, 3)
               for d in (False, True) for b in (False, True)]


@needs_kernel
@pytest.mark.parametrize('style,scale,dyscope,bias', FUSED_CASES)
def test_fused_kernel_against_torch(style, scale, dyscope, bias):
    """Every input gradient, at widths of part of a tile, one tile and more
    (the kernel projects rows in tiles of 24 pixels)."""
    for w in (1, 5, 24, 29):
        x, weight, b, init = fused_inputs(style, scale, 2, dyscope, bias, w)
        wrt = [t.requires_grad_() for t in (x, weight, b) if t is not None]
        out = fast_cpu.fused_sample_cpu(x, weight, b, style, scale, 2, init,
                                        0.3, dyscope)
        ref = torch_fused(x, weight, b, init, style, scale, 2, dyscope)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(ref)
        for u, v in zip(torch.autograd.grad(out, wrt, grad),
                        torch.autograd.grad(ref, wrt, grad)):
            torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


@needs_kernel
@pytest.mark.parametrize('style', ['lp', 'pl'])
def test_fused_kernel_gradcheck(style):
    x, weight, b, init = fused_inputs(style, 2, 1, True, True, 4, n=1)
    weight.data.mul_(0.2)  # points within a pixel: no kinks nearby

    def fn(a, wt, bias):
        return fast_cpu.fused_sample_cpu(a, wt, bias, style, 2, 1, init, 0.4,
                                         True)

    assert torch.autograd.gradcheck(
        fn, (x.requires_grad_(), weight.requires_grad_(),
             b.requires_grad_()))


@needs_kernel
@pytest.mark.parametrize('simd', [True, False])
@pytest.mark.parametrize('style', ['lp', 'pl'])
def test_float32_projection_and_scope_factors(style, simd):
    """The saved projection of the float32 kernel, AVX2 path and portable
    loop: offsets within float32 rounding of torch's matrix product, scope
    factors within 1e-6 of torch's sigmoid (saturating logits, NaN kept)."""
    s, g = 2, 4
    for w in (1, 23, 24, 25, 120):
        x, weight, b, init = fused_inputs(style, s, g, True, True, w,
                                          dtype=torch.float32)
        x[0, :, 1, 0] = 25.0  # saturating logits
        x[1, :, 2, -1] = float('nan')
        before = fast_cpu.set_simd(simd)
        try:
            out, raw = fast_cpu._module.forward_fused(
                x, weight, b, init, 0.6, True, s * s if style == 'pl' else 1,
                s, g, True)
        finally:
            fast_cpu.set_simd(before)
        k = 2 * g * s * s
        proj = offsets.project(x, weight, b, style, s)
        finite = torch.isfinite(proj)
        assert proj[:, k:][finite[:, k:]].abs().max() > 50
        assert torch.equal(torch.isfinite(raw), finite)
        # Float32 sums in two orders differ by up to ~cin * 2**-24 of the
        # sum of the terms' magnitudes, far less than this bound.
        bound = 1e-6 * offsets.project(x.abs(), weight.abs(), b.abs(), style,
                                       s) + 1e-7
        error = (raw - proj).abs()
        assert (error[:, :k] <= bound[:, :k])[finite[:, :k]].all()
        factors = proj[:, k:].sigmoid()
        # sigmoid has a slope <= 1/4: the logit's rounding, plus 1e-6.
        error = (raw[:, k:] - factors).abs()
        assert (error <= bound[:, k:] / 4 + 1e-6)[finite[:, k:]].all()
        ref = torch_fused(x, weight, b, init, style, s, g, True)
        assert torch.equal(torch.isfinite(out), torch.isfinite(ref))


@needs_kernel
def test_simd_switch_changes_the_path_not_the_function():
    """Both float32 paths against the layer in float64: float32 positions
    on a 30-px map round to ~2e-6 px, hence the 1e-5 (either path)."""
    for name, size, shrink in (('DySample+', (7, 30), 0.1),
                               ('DySample-S', (5, 11), 1.0)):
        # shrink 1: points of several pixels, many clamped at the borders
        layer = layer_for(name, 2, dtype=torch.float32)
        with torch.no_grad():
            layer.offset.weight.mul_(shrink)
        x = torch.randn(2, layer.in_channels, *size)
        exact = copy.deepcopy(layer).double()(x.double())
        before = fast_cpu.set_simd(False)
        try:
            assert not fast_cpu._module.simd()
            portable = layer(x)
        finally:
            fast_cpu.set_simd(before)
        assert fast_cpu._module.simd() == before
        fast = layer(x)
        scale = exact.abs().max()
        for out in (portable, fast):
            assert (out.double() - exact).abs().max() <= 1e-5 * scale
        assert not torch.equal(fast, portable) or not before


def _cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            return set(next(ln for ln in f if ln.startswith('flags')).split())
    except (OSError, StopIteration):
        return set()


@needs_kernel
@pytest.mark.skipif(not {'avx2', 'fma'} <= _cpu_flags(),
                    reason='needs an x86 CPU with AVX2 and FMA')
def test_avx2_path_runs_where_the_cpu_has_it():
    assert fast_cpu._module.simd()


@needs_kernel
def test_empty_batch_and_channels_last():
    layer = layer_for('DySample-S+', 2)
    x = torch.randn(2, layer.in_channels, 6, 5, dtype=torch.float64)
    ref = reference_forward(layer, x)
    torch.testing.assert_close(
        layer(x.to(memory_format=torch.channels_last)), ref)
    empty = torch.zeros(0, layer.in_channels, 6, 5, dtype=torch.float64,
                        requires_grad=True)
    out = layer(empty)
    assert out.shape == (0, layer.in_channels, 12, 10)
    out.sum().backward()
    assert empty.grad.shape == empty.shape


def test_hard_scope_and_tracing_take_the_plain_paths(monkeypatch):
    monkeypatch.setattr(
        fast_cpu, 'fused_sample_cpu',
        lambda *a: pytest.fail('fused kernel used for hard_scope'))
    layer = layer_for('DySample+', 2, hard_scope=True)
    x = torch.randn(1, layer.in_channels, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_forward(layer, x))
    monkeypatch.setattr(
        DySample, '_raw_offsets',
        lambda *a: pytest.fail('fused projection used while tracing'))
    monkeypatch.setattr(sampling.torch.jit, 'is_tracing', lambda: True)
    torch.testing.assert_close(layer.sampling_offsets(x),
                               layer.sampling_offsets_reference(x))
