# Copyright (c) mmdysample contributors. All rights reserved.
"""The Triton kernel against the grid_sample formulation.

Without a GPU the kernel runs in Triton's interpreter on CPU tensors
(``TRITON_INTERPRET=1``, set per test by a fixture). Triton 3.x reads that
variable when a function is decorated with ``triton.jit``, and
:mod:`~mmdysample.models.upsamplers.fast_triton` decorates lazily, once per
mode, so the interpreter can be switched on here without touching other
tests. Sizes are small: the interpreter runs every program in Python.
"""
import itertools
import math
import types

import pytest
import torch

from mmdysample import DYSAMPLE_PRESETS, DySample
from mmdysample.models.upsamplers import fast_triton, sampling
from mmdysample.models.upsamplers.sampling import dysample_sample_reference

triton = pytest.importorskip('triton', minversion=fast_triton.TRITON_MIN)
PRESETS = list(DYSAMPLE_PRESETS)


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    yield


def inputs(n, c, h, w, s, g, dtype=torch.float64, spread=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    # Offsets of a few pixels: points leave the map, borders are exercised.
    off = torch.randn(n, 2 * g * s * s, h, w, generator=gen,
                      dtype=torch.float64 if dtype == torch.float64 else
                      torch.float32)
    return x, off * spread


def compare(x, off, s, g, tol, grad_tol=None):
    """Output and both gradients of the kernel against the reference."""
    x = x.detach().requires_grad_()
    off = off.detach().requires_grad_()
    out = fast_triton.dysample_sample_triton(x, off, s, g)
    ref = dysample_sample_reference(x, off, s, g)
    assert out.dtype == ref.dtype == x.dtype and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    grad = torch.randn(ref.shape, dtype=torch.float64).to(ref.dtype)
    got = torch.autograd.grad(out, (x, off), grad)
    want = torch.autograd.grad(ref, (x, off), grad)
    tol = grad_tol or tol
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_the_interpreter_is_in_use(interpret):
    from triton.runtime.interpreter import InterpretedFunction
    assert isinstance(fast_triton._kernel(), InterpretedFunction)


@pytest.mark.parametrize('size,scale,groups,batch', [
    ((5, 7), 2, 4, 2),
    ((3, 4), 3, 2, 1),
    ((1, 1), 2, 1, 1),
    ((1, 6), 3, 2, 1),
    ((4, 1), 2, 1, 2),
    ((2, 2), 1, 2, 1),
    ((7, 5), 1, 1, 1),
])
def test_matches_reference_float64(interpret, size, scale, groups, batch):
    x, off = inputs(batch, 4 * groups, *size, scale, groups)
    compare(x, off, scale, groups, 1e-12)


@pytest.mark.parametrize('name,scale', itertools.product(PRESETS, [2, 3]))
def test_every_preset_offsets(interpret, name, scale):
    """Offsets as each preset makes them (init positions, its groups)."""
    preset = DYSAMPLE_PRESETS[name]
    base = preset['groups']
    if preset['style'] == 'pl':
        base = math.lcm(base, scale * scale)
    layer = DySample(base, scale, **preset).double()
    torch.nn.init.normal_(layer.offset.weight, std=0.5)
    x = torch.randn(1, base, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        off = layer.sampling_offsets_reference(x)
    compare(x, off, scale, layer.groups, 1e-12)


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5),
                                       (torch.float16, 2e-3),
                                       (torch.bfloat16, 2e-2)])
def test_reduced_precision_features(interpret, dtype, tol):
    x, off = inputs(2, 8, 5, 6, 2, 2, dtype=dtype, spread=1.0)
    assert off.dtype == torch.float32
    compare(x, off, 2, 2, tol, grad_tol=4 * tol)


def test_points_exactly_on_the_borders(interpret):
    """Whole-pixel offsets put points on the first and last pixel, where
    grid_sample's clamping passes no gradient to the offset."""
    x, off = inputs(2, 4, 4, 5, 2, 2)
    off = off.round().clamp(-5, 5)
    compare(x, off, 2, 2, 1e-12)


def test_partial_gradients_and_empty_batch(interpret):
    x, off = inputs(1, 4, 3, 4, 2, 2)
    for need_x in (True, False):
        a, b = x.clone().requires_grad_(need_x), off.clone()
        b.requires_grad_(not need_x)
        wrt = a if need_x else b
        grad = torch.randn(1, 4, 6, 8, dtype=torch.float64)
        got = torch.autograd.grad(
            fast_triton.dysample_sample_triton(a, b, 2, 2), wrt, grad)
        want = torch.autograd.grad(
            dysample_sample_reference(a, b, 2, 2), wrt, grad)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    x, off = inputs(0, 4, 3, 4, 2, 2)
    x.requires_grad_()
    off.requires_grad_()
    out = fast_triton.dysample_sample_triton(x, off, 2, 2)
    assert out.shape == (0, 4, 6, 8)
    out.sum().backward()
    assert x.grad.shape == x.shape and off.grad.shape == off.shape


def test_non_contiguous_inputs(interpret):
    x, off = inputs(2, 4, 5, 3, 2, 2)
    ref = dysample_sample_reference(x, off, 2, 2)
    torch.testing.assert_close(
        fast_triton.dysample_sample_triton(
            x.to(memory_format=torch.channels_last), off, 2, 2), ref)
    x_t = x.transpose(2, 3).contiguous().transpose(2, 3)
    off_t = off.transpose(2, 3).contiguous().transpose(2, 3)
    torch.testing.assert_close(
        fast_triton.dysample_sample_triton(x_t, off_t, 2, 2), ref)


def test_bad_arguments_are_named(interpret, monkeypatch):
    x, off = inputs(1, 4, 3, 3, 2, 2)
    with pytest.raises(ValueError, match=r'offset must have shape'):
        fast_triton.dysample_sample_triton(x, off[:, :8], 2, 2)
    with pytest.raises(ValueError, match=r'channels \(4\).*groups \(3\)'):
        fast_triton.dysample_sample_triton(x, torch.zeros(1, 24, 3, 3), 2, 3)
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with pytest.raises(ValueError, match='CUDA tensors.*got cpu'):
        fast_triton.dysample_sample_triton(x, off, 2, 2)


def fake_cuda():
    return types.SimpleNamespace(device=torch.device('cuda', 0))


def test_dispatch_for_cuda_tensors(monkeypatch):
    assert sampling.use_triton(fake_cuda())
    assert not sampling.use_triton(torch.zeros(1))
    monkeypatch.setenv('MMDYSAMPLE_FAST_CUDA', '0')
    assert not sampling.use_triton(fake_cuda())
    monkeypatch.delenv('MMDYSAMPLE_FAST_CUDA')
    monkeypatch.setattr(sampling, 'is_eager', lambda: False)
    assert not sampling.use_triton(fake_cuda())


def test_missing_triton_falls_back(monkeypatch):
    import sys
    monkeypatch.setattr(fast_triton, 'triton', None)
    monkeypatch.setitem(sys.modules, 'triton', None)  # import fails
    assert not fast_triton.available()
    assert not sampling.use_triton(fake_cuda())


# --------------------------------------------------------------------------
# The compiled kernel, on a GPU.


@pytest.mark.gpu
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5),
                                       (torch.float16, 2e-3),
                                       (torch.bfloat16, 2e-2),
                                       (torch.float64, 1e-12)])
def test_cuda_kernel_matches_reference(dtype, tol):
    x, off = inputs(2, 64, 31, 45, 2, 4, dtype=dtype)
    compare(x.cuda(), off.cuda(), 2, 4, tol, grad_tol=4 * tol)
    x, off = inputs(1, 24, 17, 9, 3, 2, dtype=dtype)
    compare(x.cuda(), off.cuda(), 3, 2, tol, grad_tol=4 * tol)


@pytest.mark.gpu
@pytest.mark.parametrize('name', PRESETS)
def test_cuda_layer_takes_the_kernel(name, monkeypatch):
    real = fast_triton.dysample_sample_triton
    calls = []
    monkeypatch.setattr(fast_triton, 'dysample_sample_triton',
                        lambda *a: calls.append(1) or real(*a))
    layer = DySample(64, 2, **DYSAMPLE_PRESETS[name]).cuda()
    torch.nn.init.normal_(layer.offset.weight, std=0.3)
    x = torch.randn(2, 64, 20, 30, device='cuda')
    out = layer(x)
    assert calls
    ref = dysample_sample_reference(x, layer.sampling_offsets_reference(x),
                                    2, layer.groups)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv('MMDYSAMPLE_FAST_CUDA', '0')
    calls.clear()
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-5)
    assert not calls
