# Copyright (c) mmdysample contributors. All rights reserved.
"""The fused CPU kernel against the grid_sample formulation."""
import itertools
import os
import subprocess
import sys

import pytest
import torch

from mmdysample import DYSAMPLE_PRESETS, DySample
from mmdysample.models.upsamplers import fast_cpu, sampling
from mmdysample.models.upsamplers.sampling import (dysample_sample,
                                                   dysample_sample_reference)

needs_kernel = pytest.mark.skipif(
    not fast_cpu.available(), reason='the CPU kernel could not be built')


def inputs(n, c, h, w, s, g, dtype=torch.float64, spread=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    # Offsets of a few pixels: points leave the map, borders are exercised.
    off = torch.randn(n, 2 * g * s * s, h, w, generator=gen, dtype=dtype)
    return x, off * spread


@needs_kernel
@pytest.mark.parametrize(
    'size,scale,groups,batch',
    list(
        itertools.product([(5, 7), (1, 1), (1, 6), (4, 1), (2, 2)], [1, 2, 3],
                          [1, 4], [0, 1, 3])))
def test_forward_and_gradients_match_reference(size, scale, groups, batch):
    x, off = inputs(batch, 8, *size, scale, groups)
    x.requires_grad_(True)
    off.requires_grad_(True)
    fast = dysample_sample(x, off, scale, groups)
    ref = dysample_sample_reference(x, off, scale, groups)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    fast_grads = torch.autograd.grad(fast, (x, off), grad, allow_unused=True)
    ref_grads = torch.autograd.grad(ref, (x, off), grad, allow_unused=True)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_kernel
@pytest.mark.parametrize('need_x,need_off', [(True, False), (False, True)])
def test_partial_gradients(need_x, need_off):
    x, off = inputs(2, 8, 4, 5, 2, 4)
    x.requires_grad_(need_x)
    off.requires_grad_(need_off)
    wanted = [t for t in (x, off) if t.requires_grad]
    grad = torch.randn(2, 8, 8, 10, dtype=torch.float64)
    a = torch.autograd.grad(dysample_sample(x, off, 2, 4), wanted, grad)
    b = torch.autograd.grad(
        dysample_sample_reference(x, off, 2, 4), wanted, grad)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_kernel
def test_gradcheck():
    x, off = inputs(1, 4, 3, 4, 2, 2, spread=0.7)
    assert torch.autograd.gradcheck(
        lambda a, b: fast_cpu.dysample_sample_cpu(a, b, 2, 2),
        (x.requires_grad_(), off.requires_grad_()))


@needs_kernel
def test_float32_paper_shape_within_1e5_relative():
    x, off = inputs(1, 256, 120, 120, 2, 4, dtype=torch.float32, spread=0.3)
    fast = dysample_sample(x, off, 2, 4)
    exact = dysample_sample_reference(x.double(), off.double(), 2, 4)
    ref = dysample_sample_reference(x, off, 2, 4)
    scale = exact.abs().max()
    # float32 positions on a 120-px map carry ~1e-5 px of rounding, in both
    # paths (grid_sample's also goes through normalised coordinates).
    # Measured: kernel 6e-6, grid_sample path 2e-5 of the largest value.
    fast_err = (fast.double() - exact).abs().max() / scale
    ref_err = (ref.double() - exact).abs().max() / scale
    assert fast_err < 1e-5 and fast_err <= ref_err
    assert (fast - ref).abs().max() / scale < 1e-5 + ref_err


@needs_kernel
@pytest.mark.parametrize('name', list(DYSAMPLE_PRESETS))
def test_layer_uses_kernel_and_matches(name, monkeypatch):
    c = 72  # suits every preset at s=2 and s=3
    real = fast_cpu.fused_sample_cpu
    for scale in (2, 3):
        layer = DySample(c, scale, **DYSAMPLE_PRESETS[name])
        torch.nn.init.normal_(layer.offset.weight, std=0.3)
        x = torch.randn(2, c, 6, 5)
        calls = []
        monkeypatch.setattr(fast_cpu, 'fused_sample_cpu',
                            lambda *a: calls.append(1) or real(*a))
        out = layer(x)
        assert calls, 'the layer did not take the fused kernel'
        ref = dysample_sample_reference(x, layer.sampling_offsets(x), scale,
                                        layer.groups)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_layouts_and_half_precision():
    layer = DySample(16)
    torch.nn.init.normal_(layer.offset.weight, std=0.3)
    x = torch.randn(2, 16, 9, 7)
    ref = layer(x)
    torch.testing.assert_close(
        layer(x.to(memory_format=torch.channels_last)), ref)
    torch.testing.assert_close(
        layer(x.transpose(2, 3).contiguous().transpose(2, 3)), ref)
    half = layer.half()(x.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), ref, rtol=5e-3, atol=5e-3)


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv('MMDYSAMPLE_FAST_CPU', '0')
    for name in ('dysample_sample_cpu', 'fused_sample_cpu'):
        monkeypatch.setattr(
            fast_cpu, name,
            lambda *a: pytest.fail('kernel used although switched off'))
    assert not fast_cpu.available()
    x, off = inputs(1, 8, 3, 3, 2, 4)
    torch.testing.assert_close(
        dysample_sample(x, off, 2, 4), dysample_sample_reference(x, off, 2, 4))
    layer = DySample(8, dyscope=True)
    feat = torch.randn(1, 8, 3, 4)
    torch.testing.assert_close(
        layer(feat),
        dysample_sample_reference(feat, layer.sampling_offsets(feat), 2, 4))


def test_falls_back_when_the_build_fails(monkeypatch):
    monkeypatch.setattr(fast_cpu, '_module', None)
    monkeypatch.setattr(fast_cpu, '_failure', None)

    def broken_load(*args, **kwargs):
        raise RuntimeError('Ninja is required to load C++ extensions')

    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setattr(cpp_extension, 'load', broken_load)
    with pytest.warns(UserWarning, match='Ninja is required'):
        assert not fast_cpu.available()
    x, off = inputs(1, 8, 3, 3, 2, 4)
    torch.testing.assert_close(
        dysample_sample(x, off, 2, 4), dysample_sample_reference(x, off, 2, 4))


NO_COMPILER_SCRIPT = """
import warnings
import torch
from mmdysample import DySample
from mmdysample.models.upsamplers import fast_cpu
from mmdysample.models.upsamplers.sampling import dysample_sample_reference
warnings.simplefilter('always')
layer = DySample(8, 2, groups=4).eval()
x = torch.randn(1, 8, 5, 6)
with torch.no_grad():
    y = layer(x)
    ref = dysample_sample_reference(x, layer.sampling_offsets(x), 2, 4)
torch.testing.assert_close(y, ref)
print('available', fast_cpu.available())
"""


def test_a_machine_without_a_compiler_gets_grid_sample(tmp_path):
    """A real build with no C++ compiler (``CXX`` names a missing one, an
    empty extensions folder): the layer runs on ``grid_sample``, after one
    warning line that says why."""
    env = dict(os.environ)
    env.pop(fast_cpu._ENV, None)
    env.update(CXX=str(tmp_path / 'no-such-c++'),
               TORCH_EXTENSIONS_DIR=str(tmp_path / 'extensions'))
    proc = subprocess.run([sys.executable, '-c', NO_COMPILER_SCRIPT],
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == 'available False'
    warned = [
        line for line in proc.stderr.splitlines()
        if 'UserWarning: mmdysample: the fused CPU kernel' in line
    ]
    assert len(warned) == 1, proc.stderr[-3000:]
    assert f"'{env['CXX']}' not found" in warned[0]
    assert warned[0].endswith('using grid_sample instead')


def test_tracing_takes_the_reference_path(monkeypatch):
    for name in ('dysample_sample_cpu', 'fused_sample_cpu'):
        monkeypatch.setattr(
            fast_cpu, name,
            lambda *a: pytest.fail('kernel used while tracing'))
    layer = DySample(8, groups=2)
    # check_trace would re-run the layer eagerly, where the kernel is right.
    traced = torch.jit.trace(
        layer, torch.randn(1, 8, 4, 4), check_trace=False)
    x = torch.randn(2, 8, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(
            traced(x),
            dysample_sample_reference(x, layer.sampling_offsets(x), 2, 2))
    assert sampling.use_fast_cpu(torch.randn(1)) == fast_cpu.available()


def test_a_build_is_announced_in_one_line(monkeypatch):
    monkeypatch.setattr(fast_cpu, '_module', None)
    monkeypatch.setattr(fast_cpu, '_failure', None)
    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setattr(cpp_extension, 'load', lambda **kwargs: 'built')
    logged = []
    monkeypatch.setattr(fast_cpu, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    monkeypatch.setattr(fast_cpu, '_cached_build', lambda: '/the/cache')
    assert fast_cpu._load() == 'built'
    assert fast_cpu._load() == 'built'
    assert len(logged) == 1
    assert 'compiling' in logged[0] and '/the/cache' in logged[0]
    # Already built: silent.
    monkeypatch.setattr(fast_cpu, '_module', None)
    monkeypatch.setattr(fast_cpu, '_cached_build', lambda: None)
    assert fast_cpu._load() == 'built' and len(logged) == 1


def test_cached_build_is_a_build_newer_than_the_source(
        monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    folder = fast_cpu._cached_build()
    assert folder.startswith(str(tmp_path))
    built = os.path.join(folder, 'mmdysample_dysample_cpu.so')
    open(built, 'w').close()
    assert fast_cpu._cached_build() is None
    source_time = os.path.getmtime(fast_cpu._SOURCE)
    os.utime(built, (source_time - 60, source_time - 60))
    assert fast_cpu._cached_build() == folder


def test_headers_count_for_a_rebuild(monkeypatch, tmp_path):
    """torch rebuilds when a source or a flag changes, not a header: the
    headers' digest is a flag, and a newer header means a new build."""
    import shutil
    csrc = tmp_path / 'csrc'
    shutil.copytree(fast_cpu._CSRC, csrc)
    monkeypatch.setattr(fast_cpu, '_CSRC', str(csrc))
    monkeypatch.setattr(fast_cpu, '_SOURCE', str(csrc / 'dysample_cpu.cpp'))
    included = {
        line.split('"')[1]
        for line in open(fast_cpu._SOURCE) if line.startswith('#include "')
    }
    assert included == set(fast_cpu._HEADERS)
    digest = fast_cpu._digest()
    header = csrc / fast_cpu._HEADERS[0]
    header.write_text(header.read_text() + '\n// changed\n')
    assert fast_cpu._digest() != digest
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path / 'ext'))
    folder = fast_cpu._cached_build()
    built = os.path.join(folder, 'mmdysample_dysample_cpu.so')
    open(built, 'w').close()
    assert fast_cpu._cached_build() is None
    header_time = os.path.getmtime(header)
    os.utime(built, (header_time - 60, header_time - 60))
    assert fast_cpu._cached_build() == folder
