# Copyright (c) mmdysample contributors. All rights reserved.
"""A2U (dynamic-cs), a guided upsampler: 3 x 3 reassembly kernels from a
low-rank affinity of the guide."""
import math

import pytest
import torch
import torch.nn.functional as F
from guided_checks import check_cuda_matches_cpu
from mmengine.registry import MODELS
from torch.func import functional_call

from mmdysample.deployment import exporter_kwargs
from mmdysample.models import build_upsampler, list_upsamplers, needs_guide
from mmdysample.models.upsamplers import A2U, a2u
from mmdysample.models.upsamplers.a2u import (adaptive_avg_pool2d,
                                              correlate_by_taps,
                                              correlate_shared)


def randomize(layer, seed=0):
    """Random weights, GroupNorm affine included (not the init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return layer


def make(in_channels=4, guide_channels=8, norm_groups=4,
         dtype=torch.float64, seed=0):
    layer = A2U(in_channels, guide_channels=guide_channels,
                norm_groups=norm_groups)
    return randomize(layer, seed).to(dtype)


def pair(n=2, c=4, h=5, w=7, c_g=8, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    guide = torch.randn(n, c_g, 2 * h, 2 * w, generator=gen, dtype=dtype)
    return x, guide


def loop_kernels(layer, guide):
    """The spec's kernels ``(N, 9, 2H, 2W)``, one value at a time (float64).

    Per sample: ``p = W_p mean(g) + b_p`` (36); 6 x 6 adaptive average pool
    (bin i: rows floor(i H / 6) to ceil((i + 1) H / 6)); 6 x 6 filters
    ``f = w . pooled + b`` for u and v; each channel correlated with them
    (stride 2, zero padding 2); GroupNorm (biased variance over the group's
    channels and pixels, affine) and LeakyReLU(0.01); ``a = sum_c u v /
    sqrt(C)``; logits ``p[4 t + 2 i + j] a[y, x]`` for tap t of output
    pixel (2y + i, 2x + j) (pixel shuffle); ``softmax_t(sigmoid(.))``.
    """
    n, c, big_h, big_w = guide.shape
    h, w = big_h // 2, big_w // 2
    groups = layer.norm_groups
    g = guide.tolist()
    w_p = [row[:, 0, 0].tolist() for row in layer.conv_p.weight]
    b_p = layer.conv_p.bias.tolist()
    out = torch.zeros(n, 9, big_h, big_w, dtype=torch.float64)

    def bins(size, i):
        return range(math.floor(i * size / 6), math.ceil((i + 1) * size / 6))

    for b in range(n):
        mean = [sum(map(sum, g[b][ci])) / (big_h * big_w) for ci in range(c)]
        p = [b_p[m] + sum(w_p[m][ci] * mean[ci] for ci in range(c))
             for m in range(36)]
        pooled = [[[0.0] * 6 for _ in range(6)] for _ in range(c)]
        for ci in range(c):
            for i in range(6):
                for j in range(6):
                    cells = [g[b][ci][r][s] for r in bins(big_h, i)
                             for s in bins(big_w, j)]
                    pooled[ci][i][j] = sum(cells) / len(cells)
        branches = []
        for conv, norm in ((layer.conv_u, layer.norm_u),
                           (layer.conv_v, layer.norm_v)):
            wf, bf = conv.weight[0, :, 0, 0].tolist(), float(conv.bias)
            filt = [[bf + sum(wf[ci] * pooled[ci][i][j] for ci in range(c))
                     for j in range(6)] for i in range(6)]
            corr = [[[0.0] * w for _ in range(h)] for _ in range(c)]
            for ci in range(c):
                for y in range(h):
                    for x in range(w):
                        total = 0.0
                        for a in range(6):
                            for bb in range(6):
                                r, s = 2 * y + a - 2, 2 * x + bb - 2
                                if 0 <= r < big_h and 0 <= s < big_w:
                                    total += filt[a][bb] * g[b][ci][r][s]
                        corr[ci][y][x] = total
            gamma, beta = norm.weight.tolist(), norm.bias.tolist()
            size = c // groups
            for gi in range(groups):
                chans = range(gi * size, (gi + 1) * size)
                values = [corr[ci][y][x] for ci in chans for y in range(h)
                          for x in range(w)]
                mu = sum(values) / len(values)
                var = sum((v - mu)**2 for v in values) / len(values)
                for ci in chans:
                    for y in range(h):
                        for x in range(w):
                            v = (corr[ci][y][x] - mu) / math.sqrt(var +
                                                                  norm.eps)
                            v = v * gamma[ci] + beta[ci]
                            corr[ci][y][x] = v if v >= 0 else 0.01 * v
            branches.append(corr)
        u, v = branches
        for y in range(h):
            for x in range(w):
                aff = sum(u[ci][y][x] * v[ci][y][x]
                          for ci in range(c)) / math.sqrt(c)
                for i in range(2):
                    for j in range(2):
                        sig = [1 / (1 + math.exp(-p[4 * t + 2 * i + j] * aff))
                               for t in range(9)]
                        exps = [math.exp(s) for s in sig]
                        for t in range(9):
                            out[b, t, 2 * y + i, 2 * x + j] = exps[t] / sum(
                                exps)
    return out


def loop_reassemble(x, kernels):
    """``out[b, c, Y, X] = sum_t kernels[b, 3 dy + dx, Y, X] *
    x[b, c, Y // 2 + dy - 1, X // 2 + dx - 1]``, zero outside ``x``."""
    n, c, h, w = x.shape
    xs, ks = x.tolist(), kernels.tolist()
    out = torch.zeros(n, c, 2 * h, 2 * w, dtype=torch.float64)
    for b in range(n):
        for ch in range(c):
            for yy in range(2 * h):
                for xx in range(2 * w):
                    total = 0.0
                    for dy in range(3):
                        for dx in range(3):
                            r, s = yy // 2 + dy - 1, xx // 2 + dx - 1
                            if 0 <= r < h and 0 <= s < w:
                                total += ks[b][3 * dy + dx][yy][xx] * xs[b][
                                    ch][r][s]
                    out[b, ch, yy, xx] = total
    return out


@pytest.mark.parametrize('c,c_g,groups,h,w', [
    (4, 8, 4, 5, 7),  # guide 10 x 14: bins not divisible, overlapping
    (3, 8, 2, 2, 1),  # guide 4 x 2: smaller than the 6 x 6 pool
    (2, 4, 1, 3, 6),  # guide 6 x 12
])
def test_a2u_matches_loop_reference(c, c_g, groups, h, w):
    layer = make(c, c_g, groups)
    x, guide = pair(c=c, c_g=c_g, h=h, w=w)
    kernels = loop_kernels(layer, guide)
    torch.testing.assert_close(layer.kernels(guide), kernels)
    out = layer(x, guide)
    assert out.shape == (2, c, 2 * h, 2 * w) and out.dtype == torch.float64
    torch.testing.assert_close(out, loop_reassemble(x, kernels))


def loop_correlate(x, filters):
    """``out[b, f, c, y, x] = sum_{a, e} filters[b, f, a, e] *
    x[b, c, 2y + a - p, 2x + e - p]``, ``p = (k - 1) // 2``, zero outside."""
    n, c, big_h, big_w = x.shape
    nf, k = filters.shape[1], filters.shape[-1]
    pad = (k - 1) // 2
    xs, fs = x.tolist(), filters.tolist()
    out = torch.zeros(n, nf, c, big_h // 2, big_w // 2, dtype=torch.float64)
    for b in range(n):
        for f in range(nf):
            for ch in range(c):
                for y in range(big_h // 2):
                    for xx in range(big_w // 2):
                        total = 0.0
                        for a in range(k):
                            for e in range(k):
                                r, s = 2 * y + a - pad, 2 * xx + e - pad
                                if 0 <= r < big_h and 0 <= s < big_w:
                                    total += fs[b][f][a][e] * xs[b][ch][r][s]
                        out[b, f, ch, y, xx] = total
    return out


@pytest.mark.parametrize('correlate', [correlate_shared, correlate_by_taps])
@pytest.mark.parametrize('k,size', [(6, (10, 14)), (6, (4, 2)), (3, (6, 8)),
                                    (4, (2, 6))])
def test_correlations_match_loop(correlate, k, size):
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(3, 2, *size, generator=gen, dtype=torch.float64)
    filters = torch.randn(3, 2, k, k, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(correlate(x, filters),
                               loop_correlate(x, filters))


def test_a2u_traced_path_matches_loop_reference(monkeypatch):
    # Traced graphs (ONNX, torch.compile) take correlate_by_taps.
    layer = make(4, 8, 4)
    x, guide = pair()
    expected = layer(x, guide)
    calls = []

    def by_taps(*args):
        calls.append(1)
        return correlate_by_taps(*args)

    monkeypatch.setattr(a2u, 'is_eager', lambda: False)
    monkeypatch.setattr(a2u, 'correlate_by_taps', by_taps)
    out = layer(x, guide)
    assert calls == [1]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        layer.kernels(guide), loop_kernels(layer, guide))


@pytest.mark.parametrize('size', [(1, 1), (2, 3), (5, 4), (6, 6), (7, 13),
                                  (12, 18), (25, 9)])
def test_adaptive_avg_pool2d_is_pytorchs(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(
        adaptive_avg_pool2d(x, 6), F.adaptive_avg_pool2d(x, 6), rtol=0,
        atol=1e-12)
    torch.testing.assert_close(
        adaptive_avg_pool2d(x.float(), 6), F.adaptive_avg_pool2d(x.float(), 6))


def test_a2u_kernels_sum_to_one_and_constant_input_stays_constant():
    layer = make(4, 8, 4)
    x, guide = pair()
    kernels = layer.kernels(guide)
    assert bool((kernels > 0).all())
    torch.testing.assert_close(kernels.sum(1), torch.ones(2, 10, 14,
                                                          dtype=torch.float64))
    out = layer(torch.full_like(x, 2.5), guide)
    inner = out[:, :, 2:-2, 2:-2]
    torch.testing.assert_close(inner, torch.full_like(inner, 2.5))
    # The zero padding shows at the border: there the kernels lose weight.
    assert bool((out[:, :, 0] < 2.5 - 1e-6).all())


def test_a2u_guide_changes_output():
    layer = make(4, 8, 4)
    x, guide = pair()
    other = guide.clone()
    other[:, :, 3:5, 4:6] += 1.0
    assert (layer(x, guide) - layer(x, other)).abs().amax() > 1e-3


def test_a2u_empty_batch():
    layer = make(4, 8, 4)
    x, guide = pair(n=0)
    assert layer(x, guide).shape == (0, 4, 10, 14)


def test_a2u_samples_do_not_mix():
    layer = make(4, 8, 4)
    x, guide = pair(n=3)
    out = layer(x, guide)
    torch.testing.assert_close(out[1:2], layer(x[1:2], guide[1:2]))


def test_a2u_gradcheck():
    layer = make(2, 4, 2)
    x, guide = pair(c=2, c_g=4, h=3, w=2)
    x.requires_grad_()
    guide.requires_grad_()
    params = {k: v.detach().clone().requires_grad_()
              for k, v in layer.named_parameters()}

    def fn(x, guide, *values):
        return functional_call(layer, dict(zip(params, values)), (x, guide))

    # Every input of one sample; then two samples and the weights (~300
    # inputs) by random projections.
    assert torch.autograd.gradcheck(layer, (x[:1], guide[:1]))
    assert torch.autograd.gradcheck(
        fn, (x, guide, *params.values()), fast_mode=True)


def test_a2u_every_parameter_gets_a_gradient():
    layer = make(4, 8, 4, dtype=torch.float32)
    x, guide = pair(dtype=torch.float32)
    x.requires_grad_()
    guide.requires_grad_()
    out = layer(x, guide)
    assert out.dtype == torch.float32
    out.backward(torch.randn_like(out))
    for name, p in [('x', x), ('guide', guide), *layer.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a2u_parameter_count_per_stage_at_256():
    layer = A2U(256)
    assert sum(p.numel() for p in layer.parameters()) == 10_790
    # The paper's detection column (9,728 per stage) counts the three
    # convolutions' weights only: 36 C + 2 C.
    weights = sum(m.weight.numel()
                  for m in (layer.conv_p, layer.conv_u, layer.conv_v))
    assert weights == 9_728


def test_a2u_init_is_the_authors():
    layer = A2U(256)
    randomize(layer)
    layer.init_weights()
    gain = math.sqrt(2 / (1 + 0.01**2))  # LeakyReLU(0.01)
    # Xavier normal: fan_in 256, fan_out 36.
    conv = layer.conv_p.weight.detach()
    assert abs(float(conv.std()) / (gain * math.sqrt(2 / 292)) - 1) < 0.05
    for name, p in layer.named_parameters():
        if name.endswith('bias'):
            assert bool((p == 0).all()), name
        elif name.startswith('norm'):
            assert bool((p == 1).all()), name


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(scale_factor=4), ValueError, 'scale_factor=4'),
    (dict(norm_groups=3), ValueError,
     r'guide_channels \(8\) must be divisible by norm_groups \(3\)'),
    (dict(norm_groups=0), ValueError, 'norm_groups must be >= 1, got 0'),
    (dict(norm_groups=1.5), ValueError, 'norm_groups must be an integer'),
    (dict(guide_channels=0), ValueError, 'guide_channels must be >= 1'),
])
def test_a2u_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        A2U(**{'in_channels': 8, 'norm_groups': 4, **kwargs})


@pytest.mark.parametrize('guide_shape', [(2, 8, 10, 13), (2, 8, 11, 14),
                                         (2, 4, 10, 14), (3, 8, 10, 14)])
def test_a2u_rejects_a_wrong_guide(guide_shape):
    layer = A2U(8, norm_groups=4)
    with pytest.raises(ValueError, match='expects a guide of shape'):
        layer(torch.rand(2, 8, 5, 7), torch.rand(guide_shape))


def test_a2u_is_a_registered_guided_upsampler():
    assert 'A2U' in list_upsamplers()
    layer = build_upsampler('A2U', 64)
    assert isinstance(layer, A2U) and needs_guide(layer)
    assert (layer.in_channels, layer.guide_channels, layer.scale_factor,
            layer.norm_groups) == (64, 64, 2, 32)
    small = build_upsampler(dict(type='A2U', norm_groups=4), 16)
    assert small.norm_u.num_groups == 4 and 'norm_groups=4' in repr(small)
    # GroupNorm(32) needs 32 | C: a clear error, not torch's.
    with pytest.raises(ValueError, match='norm_groups'):
        build_upsampler('A2U', 16)
    other = MODELS.build(dict(type='A2U', in_channels=3, guide_channels=8,
                              norm_groups=8))
    assert other.conv_p.in_channels == 8


class Kernels(torch.nn.Module):
    """A2U's kernel prediction alone: the graph of its own ops (pooling,
    per-sample filters, GroupNorm, pixel shuffle)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, guide):
        return self.layer.kernels(guide)


@pytest.mark.filterwarnings('ignore::DeprecationWarning',
                            'ignore::FutureWarning',
                            'ignore::torch.jit.TracerWarning')
def test_a2u_kernels_export_to_onnx_with_dynamic_sizes(tmp_path):
    # The whole layer's export (with the shared CARAFE reassembly) is
    # tested in test_export_guided.py.
    ort = pytest.importorskip('onnxruntime')
    module = Kernels(make(4, 8, 4, dtype=torch.float32))
    path = str(tmp_path / 'a2u_kernels.onnx')
    guide = pair(n=1, h=6, w=8, dtype=torch.float32)[1]
    torch.onnx.export(module, (guide, ), path, opset_version=17,
                      input_names=['guide'], output_names=['kernels'],
                      dynamic_axes={'guide': {0: 'n', 2: 'h', 3: 'w'},
                                    'kernels': {0: 'n', 2: 'h', 3: 'w'}},
                      **exporter_kwargs(dynamo=False))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    # Other batch, odd sizes, and a guide smaller than the 6 x 6 pool.
    for n, h, w in [(2, 5, 7), (3, 2, 1)]:
        guide = pair(n=n, h=h, w=w, dtype=torch.float32, seed=h)[1]
        (out, ) = session.run(None, dict(guide=guide.numpy()))
        with torch.no_grad():
            expected = module(guide)
        torch.testing.assert_close(torch.from_numpy(out), expected, rtol=0,
                                   atol=1e-4)


@pytest.mark.gpu
def test_a2u_cuda_matches_cpu():
    check_cuda_matches_cpu(
        lambda: A2U(16, guide_channels=64, norm_groups=32))
