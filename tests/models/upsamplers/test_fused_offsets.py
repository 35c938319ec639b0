# Copyright (c) mmdysample contributors. All rights reserved.
"""The fused offset projection and the scoped CPU kernel, each against the
paper's formulation (``sampling_offsets_reference``, grid_sample)."""
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
    real = fast_cpu.scoped_sample_cpu
    monkeypatch.setattr(fast_cpu, 'scoped_sample_cpu',
                        lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, layer.in_channels, 5, 4, dtype=torch.float64,
                    requires_grad=True)
    out = layer(x)
    assert calls, 'the layer did not take the scoped kernel'
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


@needs_kernel
@pytest.mark.parametrize('dyscope', [False, True])
def test_scoped_kernel_against_torch_scope(dyscope):
    """The kernel's own scope arithmetic, against eq. 4 / 5 in torch."""
    s, g = 2, 2
    k = 2 * g * s * s
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64, generator=gen)
    raw = torch.randn(2, 2 * k if dyscope else k, 3, 5, dtype=torch.float64,
                      generator=gen) * 4
    init = torch.randn(1, k, 1, 1, dtype=torch.float64, generator=gen)
    x.requires_grad_()
    raw.requires_grad_()
    factors = raw
    if dyscope:  # the kernel takes sigmoid(logits), the scope factors
        factors = torch.cat([raw[:, :k], raw[:, k:].sigmoid()], 1)
    out = fast_cpu.scoped_sample_cpu(x, factors, s, g, init, 0.3, dyscope)
    off = offsets.scope_offsets(raw, 0.3, dyscope, False, init)
    ref = dysample_sample_reference(x, off, s, g)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (x, raw), grad),
                    torch.autograd.grad(ref, (x, raw), grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_kernel
def test_scoped_kernel_gradcheck():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 3, 4, dtype=torch.float64, generator=gen)
    raw = torch.randn(1, 32, 3, 4, dtype=torch.float64, generator=gen)
    raw[:, 16:] = raw[:, 16:].sigmoid()  # scope factors in (0, 1)
    init = torch.randn(16, dtype=torch.float64, generator=gen) * 0.3
    assert torch.autograd.gradcheck(
        lambda a, b: fast_cpu.scoped_sample_cpu(a, b, 2, 2, init, 0.4, True),
        (x.requires_grad_(), raw.requires_grad_()))


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
        fast_cpu, 'scoped_sample_cpu',
        lambda *a: pytest.fail('scoped kernel used for hard_scope'))
    layer = layer_for('DySample+', 2, hard_scope=True)
    x = torch.randn(1, layer.in_channels, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_forward(layer, x))
    monkeypatch.setattr(
        DySample, '_raw_offsets',
        lambda *a: pytest.fail('fused projection used while tracing'))
    monkeypatch.setattr(sampling.torch.jit, 'is_tracing', lambda: True)
    torch.testing.assert_close(layer.sampling_offsets(x),
                               layer.sampling_offsets_reference(x))
